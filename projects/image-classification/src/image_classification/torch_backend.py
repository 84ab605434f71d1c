"""The classifier on torch: loads a checkpoint, verifies it, and runs batches on CPU or CUDA.

Two checkpoint formats are accepted, both free of pickle (loading a pickle runs code):
- TorchScript (`.pt`, `.ts`): a self-contained program; preprocessing metadata rides
  along as the extra file `metadata.json` (see `training.py` for how it is written);
- safetensors (`.safetensors`): weights only, for an architecture named in the file's
  metadata or in APP_MODEL_ARCHITECTURE (see `architectures.py`).
Labels come from a text file with one label per line, in output order.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from image_classification.architectures import build_model
from image_classification.checksums import sha256_of
from image_classification.model import (
    METADATA_FILE,
    ModelLoadError,
    ModelMetadata,
    check_output_width,
    labels_for,
)
from image_classification.settings import Settings

logger = logging.getLogger(__name__)

TORCHSCRIPT_SUFFIXES = frozenset({".pt", ".pth", ".ts", ".torchscript"})


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("APP_DEVICE=cuda but no CUDA device is available")
    return torch.device(requested)


class TorchClassifier:
    """A loaded model: call `predict` with preprocessed arrays from one worker thread."""

    def __init__(
        self, module: torch.nn.Module, metadata: ModelMetadata, device: torch.device
    ) -> None:
        self.module = module.eval().to(device)
        self.metadata = metadata
        self.device = device

    @classmethod
    def load(cls, settings: Settings) -> TorchClassifier:
        path = settings.model_path
        if not path.is_file():
            raise ModelLoadError(f"checkpoint {path} does not exist")
        checksum = sha256_of(path)
        if settings.model_sha256 and checksum != settings.model_sha256.lower():
            raise ModelLoadError(
                f"checkpoint {path} has sha256 {checksum}, expected {settings.model_sha256}"
            )
        labels = labels_for(settings)
        device = resolve_device(settings.device)
        torch.set_num_threads(settings.torch_threads)
        module, recorded = _load_module(path, settings, num_classes=len(labels), device=device)
        metadata = ModelMetadata.resolve(
            settings,
            recorded,
            labels=labels,
            checksum=checksum,
            architecture=settings.model_architecture or "torchscript",
        )
        classifier = cls(module, metadata, device)
        check_output_width(classifier.predict, metadata)
        logger.info(
            "model loaded",
            extra={
                "model": metadata.name,
                "version": metadata.version,
                "device": str(device),
                "sha256": checksum,
            },
        )
        return classifier

    @torch.inference_mode()
    def predict(self, batch: np.ndarray | Sequence[np.ndarray]) -> np.ndarray:
        """Class probabilities, shape (N, number of labels), for a batch of (C, H, W) arrays."""
        inputs = torch.from_numpy(np.stack(batch) if not isinstance(batch, np.ndarray) else batch)
        logits = self.module(inputs.to(self.device, non_blocking=True))
        return torch.softmax(logits.float(), dim=1).cpu().numpy()


def _load_module(
    path: Path, settings: Settings, *, num_classes: int, device: torch.device
) -> tuple[torch.nn.Module, dict[str, object]]:
    suffix = path.suffix.lower()
    try:
        if suffix in TORCHSCRIPT_SUFFIXES:
            extra = {METADATA_FILE: ""}
            module = torch.jit.load(str(path), map_location=device, _extra_files=extra)
            recorded = json.loads(extra[METADATA_FILE]) if extra[METADATA_FILE] else {}
            return module, recorded
        if suffix == ".safetensors":
            return _load_safetensors(path, settings, num_classes=num_classes, device=device)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise ModelLoadError(f"cannot load checkpoint {path}: {exc}") from exc
    raise ModelLoadError(
        f"unsupported checkpoint {path.name}: use TorchScript (.pt) or safetensors (.safetensors)"
    )


def _load_safetensors(
    path: Path, settings: Settings, *, num_classes: int, device: torch.device
) -> tuple[torch.nn.Module, dict[str, object]]:
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as handle:
        raw = handle.metadata() or {}
    recorded: dict[str, object] = json.loads(raw[METADATA_FILE]) if METADATA_FILE in raw else {}
    architecture = settings.model_architecture or recorded.get("architecture")
    if not architecture:
        raise ModelLoadError(
            f"{path.name} holds weights only: set APP_MODEL_ARCHITECTURE to build the network"
        )
    channels = int(recorded.get("channels", settings.input_channels))  # type: ignore[call-overload]
    module = build_model(str(architecture), num_classes=num_classes, in_channels=channels)
    module.load_state_dict(load_file(str(path), device=str(device)), strict=True)
    return module, {**recorded, "architecture": architecture}
