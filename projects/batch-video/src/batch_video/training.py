"""Trains the demo frame classifier: a small CNN over 8x8 grey frames that reads digits.

    python -m batch_video train-demo --output models/demo

From scikit-learn's bundled digits (1,797 8x8 images; nothing is downloaded), with the
frames' own blur and noise added, so it reads digits as the decoder scales them down from
the videos `demo_videos.py` writes. Writes `model.pt` (TorchScript), `model.onnx` (checked
equal to torch by the ONNX Runtime pack's export) and `model.json`. Seconds on one core.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

from batch_video.checksums import sha256_of
from batch_video.classifier import MANIFEST
from batch_video.onnx_export import batches, export_onnx

LABELS = [str(digit) for digit in range(10)]
SCALE = 16 / 255  # the frames' 0-255 back to the digits' 0-16


class DigitsCNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.head = nn.Sequential(
            nn.Flatten(), nn.Linear(32 * 4 * 4, 64), nn.ReLU(), nn.Linear(64, 10)
        )

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(pixels / 16.0))


@dataclass(frozen=True)
class TrainingReport:
    output_dir: Path
    accuracy: float  # on the held-out quarter of the digits
    seconds: float


def train_demo_model(output_dir: Path, *, epochs: int = 30, seed: int = 0) -> TrainingReport:
    started = time.perf_counter()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a network this small trains fastest, and alike, on one
    try:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        data = load_digits()
        images = data.images.astype(np.float32)[:, None, :, :]
        x_train, x_test, y_train, y_test = train_test_split(
            images, data.target, test_size=0.25, random_state=seed, stratify=data.target
        )
        model = DigitsCNN()
        optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
        targets = torch.from_numpy(y_train.astype(np.int64))
        for _ in range(epochs):
            noisy = np.clip(x_train + rng.normal(0, 0.6, x_train.shape), 0, 16).astype(np.float32)
            order = torch.randperm(len(noisy))
            for start in range(0, len(noisy), 64):
                chosen = order[start : start + 64]
                optimiser.zero_grad()
                loss = nn.functional.cross_entropy(
                    model(torch.from_numpy(noisy)[chosen]), targets[chosen]
                )
                loss.backward()
                optimiser.step()
        model.eval()
        with torch.inference_mode():
            predicted = model(torch.from_numpy(x_test)).argmax(1).numpy()
        accuracy = float((predicted == y_test).mean())
        output_dir.mkdir(parents=True, exist_ok=True)
        scripted = torch.jit.script(model)
        scripted.save(str(output_dir / "model.pt"))
        export_onnx(
            model,
            output_dir / "model.onnx",
            example={"pixels": x_test[:2]},
            metadata={"labels": LABELS},
            held_out=batches(x_test, "pixels"),
        )
        _write_manifest(output_dir)
    finally:
        torch.set_num_threads(threads)
    return TrainingReport(output_dir, accuracy, time.perf_counter() - started)


def _write_manifest(folder: Path) -> None:
    files = {"torch": "model.pt", "onnxruntime": "model.onnx"}
    manifest = {
        "labels": LABELS,
        "frame": {"width": 8, "height": 8, "pixel_format": "gray"},
        "scale": SCALE,
        "files": files,
        "sha256": {name: sha256_of(folder / name) for name in files.values()},
    }
    (folder / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
