"""What the peers share with the service: its preprocessing, the model and the response.

Every peer imports the rendered project's own `image_classification.preprocessing`, so
decode, resize and normalisation are the service's code, not a re-implementation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch


def load_model(
    path: Path, threads: int, device: str = "cpu"
) -> tuple[torch.jit.ScriptModule, dict, list[str]]:
    """The TorchScript model on `device`, its recorded metadata and its labels."""
    torch.set_num_threads(threads)
    extra = {"metadata.json": ""}
    module = torch.jit.load(str(path), map_location=device, _extra_files=extra).eval()
    labels = path.with_name("labels.txt").read_text().split()
    return module, json.loads(extra["metadata.json"]), labels


def preprocessing_spec(metadata: dict):  # -> image_classification.preprocessing.Preprocessing
    from image_classification.preprocessing import Preprocessing

    return Preprocessing(
        input_size=tuple(metadata["input_size"]),
        channels=int(metadata["channels"]),
        mean=tuple(metadata["mean"]),
        std=tuple(metadata["std"]),
    )


def top_k(probabilities: np.ndarray, labels: list[str], k: int = 5) -> list[dict]:
    """The same answer the service gives: the k best labels with their probabilities."""
    best = np.argsort(probabilities)[::-1][:k]
    return [{"label": labels[i], "score": float(probabilities[i])} for i in best]


def softmax(logits: torch.Tensor) -> np.ndarray:
    return torch.softmax(logits.float(), dim=1).cpu().numpy()
