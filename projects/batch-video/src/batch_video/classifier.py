"""The frame classifier: a model folder run on torch or ONNX Runtime, one batch at a time.

A model folder holds `model.json` (labels, the frame size and pixel format the model takes,
the scale applied to pixel values, and each runtime's file with its sha256) beside the files
it names. `train-demo` writes one; swap in your own by writing the same manifest next to
your TorchScript or ONNX file. Files whose digest does not match are refused.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from batch_video.checksums import sha256_of
from batch_video.video import FrameFormat

Runtime = Literal["torch", "onnxruntime"]
MANIFEST = "model.json"


class InvalidModel(ValueError):
    """A model folder that cannot be served: missing, malformed, or a digest mismatch."""


@dataclass(frozen=True)
class ModelManifest:
    labels: tuple[str, ...]
    frame: FrameFormat
    scale: float  # pixel value (0-255) times this is the model's input
    files: dict[str, str]  # runtime -> file name in the folder
    sha256: dict[str, str]  # file name -> digest
    version: str  # the digest of the manifest itself: results say which model made them

    @classmethod
    def load(cls, folder: Path) -> ModelManifest:
        path = folder / MANIFEST
        if not path.is_file():
            raise InvalidModel(f"{path} does not exist (train one: train-demo)")
        try:
            raw = json.loads(path.read_text())
            frame = raw["frame"]
            return cls(
                labels=tuple(str(label) for label in raw["labels"]),
                frame=FrameFormat(
                    int(frame["width"]), int(frame["height"]), frame.get("pixel_format", "gray")
                ),
                scale=float(raw.get("scale", 1 / 255)),
                files={str(k): str(v) for k, v in raw["files"].items()},
                sha256={str(k): str(v) for k, v in raw.get("sha256", {}).items()},
                version=sha256_of(path)[:16],
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidModel(f"{path} is not a model manifest: {exc!r}") from exc

    @property
    def channels(self) -> int:
        return 1 if self.frame.pixel_format == "gray" else 3


class FrameClassifier(Protocol):
    manifest: ModelManifest

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        """Class probabilities (N, classes) for frames (N, height, width[, 3]) of uint8."""
        ...


def load_classifier(folder: Path, runtime: Runtime, *, threads: int = 1) -> FrameClassifier:
    manifest = ModelManifest.load(folder)
    name = manifest.files.get(runtime)
    if name is None:
        raise InvalidModel(f"{folder / MANIFEST} names no {runtime} file")
    path = folder / name
    if not path.is_file():
        raise InvalidModel(f"model file {path} does not exist")
    expected = manifest.sha256.get(name)
    if expected is not None and sha256_of(path) != expected:
        raise InvalidModel(f"model file {path} does not match its sha256 in {MANIFEST}")
    if runtime == "torch":
        return TorchClassifier(manifest, path, threads)
    return OnnxClassifier(manifest, path, threads)


def to_input(manifest: ModelManifest, pixels: np.ndarray) -> np.ndarray:
    """uint8 frames as the model's float32 input, channels first."""
    batch = pixels.astype(np.float32) * manifest.scale
    if batch.ndim == 3:
        return batch[:, None, :, :]
    return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)


class TorchClassifier:
    def __init__(self, manifest: ModelManifest, path: Path, threads: int) -> None:
        import torch

        torch.set_num_threads(threads)
        self.manifest = manifest
        self._torch = torch
        self._module = torch.jit.load(str(path), map_location="cpu").eval()

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            logits = self._module(torch.from_numpy(to_input(self.manifest, pixels)))
        return softmax(logits.float().numpy())


class OnnxClassifier:
    def __init__(self, manifest: ModelManifest, path: Path, threads: int) -> None:
        from batch_video.onnx_model import OnnxModel

        self.manifest = manifest
        self._model = OnnxModel.load(path, threads=threads)
        frame = manifest.frame
        self._model.check_input((manifest.channels, frame.height, frame.width))

    def probabilities(self, pixels: np.ndarray) -> np.ndarray:
        return softmax(self._model.run(to_input(self.manifest, pixels)))
