"""An ONNX model in an ONNX Runtime session: loaded, checked, and run on batches.

Needs only onnxruntime and numpy, so a service that runs its model here carries no torch.
What the service knows about the model beyond its weights (labels, preprocessing, name)
travels inside the file as ONNX metadata properties (`metadata`), written at export.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnxruntime as ort

from batch_video.checksums import sha256_of

Device = Literal["cpu", "cuda"]
# The metadata property that holds the exporter's JSON (labels, preprocessing, ...).
METADATA_KEY = "service_metadata"


class InvalidOnnxModel(ValueError):
    """The file is missing, is not a loadable ONNX model, or is not the model expected."""


def session_options(threads: int) -> ort.SessionOptions:
    """`threads` intra-op threads per call, one inter-op thread (a CNN graph is a chain). On
    a small CPU under concurrent load, several one-thread calls side by side (the inference
    workers sharing one session) ran as fast as or faster than one call on every core."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning threads burn the CPU between batches that other workers could use.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def resolve_device(setting: str) -> Device:
    """A device setting ("auto", "cpu" or "cuda") as a device: auto is CUDA where this
    onnxruntime has its execution provider, else the CPU."""
    if setting == "auto":
        return "cuda" if "CUDAExecutionProvider" in ort.get_available_providers() else "cpu"
    return "cuda" if setting == "cuda" else "cpu"


def providers_for(device: Device) -> list[str]:
    """The execution providers for `device`: CUDA (with the CPU as fallback) or the CPU."""
    available = ort.get_available_providers()
    if device == "cuda":
        if "CUDAExecutionProvider" not in available:
            raise InvalidOnnxModel(
                "device cuda needs onnxruntime-gpu (CUDAExecutionProvider); this onnxruntime "
                f"has {', '.join(available)}"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


# The input types a model may take: images and features as float32, token ids as int64.
DTYPES = {"tensor(float)": np.dtype(np.float32), "tensor(int64)": np.dtype(np.int64)}
Feeds = Mapping[str, np.ndarray]  # a batch: one array per input name, batch first


@dataclass(frozen=True)
class ModelInput:
    name: str
    dtype: np.dtype
    shape: tuple[int | None, ...]  # without the batch dimension; None where dynamic


@dataclass(frozen=True)
class OnnxModel:
    """A loaded model whose inputs (float32 or int64) all take the batch first."""

    session: ort.InferenceSession
    path: Path
    sha256: str
    inputs: tuple[ModelInput, ...]
    output_name: str
    metadata: Mapping[str, object]

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        device: Device = "cpu",
        threads: int = 1,
        expected_sha256: str | None = None,
    ) -> OnnxModel:
        if not path.is_file():
            raise InvalidOnnxModel(f"model {path} does not exist")
        checksum = sha256_of(path)
        if expected_sha256 and checksum != expected_sha256.lower():
            raise InvalidOnnxModel(
                f"model {path} has sha256 {checksum}, expected {expected_sha256}"
            )
        providers = providers_for(device)
        try:
            session = ort.InferenceSession(str(path), session_options(threads), providers=providers)
        except Exception as exc:  # onnxruntime raises its own types for every bad file
            raise InvalidOnnxModel(f"cannot load ONNX model {path}: {exc}") from exc
        if not session.get_outputs():
            raise InvalidOnnxModel(f"{path.name} has no output")
        metadata = _metadata(session, path)
        inputs = tuple(_model_input(tensor, path) for tensor in session.get_inputs())
        names = [i.name for i in inputs]
        expected = metadata.get("input_names")
        if expected is not None and expected != names:
            raise InvalidOnnxModel(
                f"{path.name} takes inputs {names} but its metadata says {expected}"
            )
        return cls(session, path, checksum, inputs, session.get_outputs()[0].name, metadata)

    @property
    def providers(self) -> list[str]:
        return list(self.session.get_providers())

    @property
    def input_names(self) -> list[str]:
        return [i.name for i in self.inputs]

    def check_input(self, shape: Sequence[int]) -> None:
        """Raises InvalidOnnxModel unless the model takes one input, items of `shape`."""
        if len(self.inputs) != 1:
            raise InvalidOnnxModel(
                f"{self.path.name} takes inputs {self.input_names}, not one input"
            )
        want = self.inputs[0].shape
        fits = len(want) == len(shape) and all(
            w is None or w == got for w, got in zip(want, shape, strict=True)
        )
        if not fits:
            raise InvalidOnnxModel(
                f"{self.path.name} takes items of shape {list(want)}, not {list(shape)}"
            )

    def run(self, batch: np.ndarray) -> np.ndarray:
        """The first output for a batch (N, ...) of a one-input model."""
        return self.run_feeds({self.inputs[0].name: batch})

    def run_feeds(self, feeds: Feeds) -> np.ndarray:
        """The first output for a batch given as one array per input name."""
        arrays = {i.name: np.ascontiguousarray(feeds[i.name], dtype=i.dtype) for i in self.inputs}
        (output,) = self.session.run([self.output_name], arrays)
        return np.asarray(output)


def _model_input(tensor: ort.NodeArg, path: Path) -> ModelInput:
    dtype = DTYPES.get(tensor.type)
    if dtype is None:
        raise InvalidOnnxModel(
            f"{path.name} input {tensor.name!r} is {tensor.type}, not float32 or int64"
        )
    shape = tuple(d if isinstance(d, int) else None for d in tensor.shape)
    if not shape or shape[0] not in (None, -1):
        raise InvalidOnnxModel(
            f"{path.name} has input {tensor.name!r} of shape {tensor.shape}: export it with a "
            "dynamic batch dimension first"
        )
    return ModelInput(tensor.name, dtype, shape[1:])


def _metadata(session: ort.InferenceSession, path: Path) -> Mapping[str, object]:
    raw = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    if raw is None:
        return {}
    try:
        loaded = json.loads(raw)
    except ValueError as exc:
        raise InvalidOnnxModel(f"{path.name} has unreadable metadata: {exc}") from exc
    if not isinstance(loaded, dict):
        raise InvalidOnnxModel(f"{path.name} has metadata that is not a JSON object")
    return loaded


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
    return shifted / shifted.sum(axis=1, keepdims=True)
