"""The image classifier: loads a checkpoint, verifies it, and runs batches on CPU or CUDA.

Two checkpoint formats are accepted, both free of pickle (loading a pickle runs code):
- TorchScript (`.pt`, `.ts`): a self-contained program; preprocessing metadata rides
  along as the extra file `metadata.json` (see `training.py` for how it is written);
- safetensors (`.safetensors`): weights only, for an architecture named in the file's
  metadata or in APP_MODEL_ARCHITECTURE (see `architectures.py`).
Labels come from a text file with one label per line, in output order.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from image_classification.architectures import build_model
from image_classification.preprocessing import Preprocessing
from image_classification.settings import Settings

logger = logging.getLogger(__name__)

TORCHSCRIPT_SUFFIXES = frozenset({".pt", ".pth", ".ts", ".torchscript"})
METADATA_FILE = "metadata.json"


class ModelLoadError(Exception):
    """The checkpoint, its labels or its metadata are missing, corrupt or inconsistent."""


@dataclass(frozen=True)
class ModelMetadata:
    """What the service knows about the model beyond its weights."""

    name: str
    version: str
    labels: tuple[str, ...]
    preprocessing: Preprocessing
    architecture: str | None = None
    sha256: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> ModelMetadata:
        raw = json.loads(text)
        spec = raw.pop("preprocessing")
        return cls(
            **{**raw, "labels": tuple(raw["labels"])},
            preprocessing=Preprocessing(
                input_size=tuple(spec["input_size"]),
                channels=int(spec["channels"]),
                mean=tuple(spec["mean"]),
                std=tuple(spec["std"]),
            ),
        )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def read_labels(path: Path) -> tuple[str, ...]:
    try:
        labels = tuple(line.strip() for line in path.read_text(encoding="utf-8").splitlines())
    except OSError as exc:
        raise ModelLoadError(f"cannot read labels file {path}: {exc}") from exc
    labels = tuple(label for label in labels if label)
    if not labels:
        raise ModelLoadError(f"labels file {path} has no labels")
    if len(set(labels)) != len(labels):
        raise ModelLoadError(f"labels file {path} repeats a label")
    return labels


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("APP_DEVICE=cuda but no CUDA device is available")
    return torch.device(requested)


def _preprocessing(recorded: Mapping[str, object], settings: Settings) -> Preprocessing:
    """The checkpoint's recorded preprocessing, else the APP_INPUT_* fallbacks."""
    channels = int(recorded.get("channels", settings.input_channels))  # type: ignore[call-overload]
    size = recorded.get("input_size", settings.input_size)
    mean = recorded.get("mean", settings.input_mean)
    std = recorded.get("std", settings.input_std)
    try:
        return Preprocessing(
            input_size=(int(size[0]), int(size[1])),  # type: ignore[index]
            channels=channels,
            mean=tuple(float(v) for v in mean),  # type: ignore[union-attr]
            std=tuple(float(v) for v in std),  # type: ignore[union-attr]
        )
    except (TypeError, ValueError, IndexError) as exc:
        raise ModelLoadError(f"invalid preprocessing metadata: {exc}") from exc


class ImageClassifier:
    """A loaded model: call `predict` with preprocessed arrays from one worker thread."""

    def __init__(
        self, module: torch.nn.Module, metadata: ModelMetadata, device: torch.device
    ) -> None:
        self.module = module.eval().to(device)
        self.metadata = metadata
        self.device = device

    @classmethod
    def load(cls, settings: Settings) -> ImageClassifier:
        path = settings.model_path
        if not path.is_file():
            raise ModelLoadError(f"checkpoint {path} does not exist")
        checksum = sha256_of(path)
        if settings.model_sha256 and checksum != settings.model_sha256.lower():
            raise ModelLoadError(
                f"checkpoint {path} has sha256 {checksum}, expected {settings.model_sha256}"
            )
        labels = read_labels(settings.labels_path or path.with_name("labels.txt"))
        device = resolve_device(settings.device)
        torch.set_num_threads(settings.torch_threads)
        module, recorded = _load_module(path, settings, num_classes=len(labels), device=device)
        metadata = ModelMetadata(
            name=settings.model_name or str(recorded.get("name", path.stem)),
            version=settings.model_version or str(recorded.get("version", checksum[:12])),
            labels=labels,
            preprocessing=_preprocessing(recorded, settings),
            architecture=str(
                recorded.get("architecture", settings.model_architecture or "torchscript")
            ),
            sha256=checksum,
        )
        classifier = cls(module, metadata, device)
        classifier.check_output_size()
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

    def check_output_size(self) -> None:
        probe = np.zeros((1, *self.metadata.preprocessing.shape), dtype=np.float32)
        try:
            width = self.predict(probe).shape[1]
        except Exception as exc:
            raise ModelLoadError(f"the model fails on a {probe.shape} input: {exc}") from exc
        labels = len(self.metadata.labels)
        if width != labels:
            raise ModelLoadError(f"the model has {width} outputs but the labels file has {labels}")

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
