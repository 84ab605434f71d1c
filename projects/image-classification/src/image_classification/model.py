"""What the service knows about a model besides its weights, whichever runtime runs it.

The metadata (name, version, labels, preprocessing), the labels file, the checks every
backend applies to a loaded model, and the error that keeps the service unready when
the model's files are missing, corrupt or inconsistent. No runtime is imported here: the
torch backend is in `torch_backend.py`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from image_classification.preprocessing import Preprocessing
from image_classification.settings import Settings

# Where a checkpoint records its metadata (checkpoint_metadata): a TorchScript extra file,
# a key of the safetensors header.
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
    precision: str | None = None  # as the model file records it: fp32, or int8 when quantised

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

    @classmethod
    def resolve(
        cls,
        settings: Settings,
        recorded: Mapping[str, object],
        *,
        labels: tuple[str, ...],
        checksum: str,
        architecture: str,
    ) -> ModelMetadata:
        """The model's metadata: settings first, then what the file records, then defaults."""
        path = settings.model_path
        return cls(
            name=settings.model_name or str(recorded.get("name", path.stem)),
            version=settings.model_version or str(recorded.get("version", checksum[:12])),
            labels=labels,
            preprocessing=preprocessing_of(recorded, settings),
            architecture=str(recorded.get("architecture", architecture)),
            sha256=checksum,
            precision=str(recorded["precision"]) if "precision" in recorded else None,
        )


def checkpoint_metadata(
    name: str, version: str, architecture: str, spec: Preprocessing
) -> dict[str, object]:
    """The metadata recorded inside a model file; `ModelMetadata.resolve` reads it back."""
    return {
        "name": name,
        "version": version,
        "architecture": architecture,
        "input_size": list(spec.input_size),
        "channels": spec.channels,
        "mean": list(spec.mean),
        "std": list(spec.std),
    }


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


def labels_for(settings: Settings) -> tuple[str, ...]:
    """The labels: APP_LABELS_PATH, else labels.txt beside the model."""
    return read_labels(settings.labels_path or settings.model_path.with_name("labels.txt"))


def preprocessing_of(recorded: Mapping[str, object], settings: Settings) -> Preprocessing:
    """The model's recorded preprocessing, else the APP_INPUT_* fallbacks."""
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


def check_output_width(
    predict: Callable[[np.ndarray], np.ndarray], metadata: ModelMetadata
) -> None:
    """Runs one zero input through the model: it must answer one score per label."""
    probe = np.zeros((1, *metadata.preprocessing.shape), dtype=np.float32)
    try:
        width = predict(probe).shape[1]
    except Exception as exc:
        raise ModelLoadError(f"the model fails on a {probe.shape} input: {exc}") from exc
    labels = len(metadata.labels)
    if width != labels:
        raise ModelLoadError(f"the model has {width} outputs but the labels file has {labels}")
