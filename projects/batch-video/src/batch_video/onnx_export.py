"""Exports a torch model to ONNX with a dynamic batch, and proves the export equal to torch.

A build-time step (it needs the `export` extra: torch, onnx, onnxscript); the service then
runs the file with ONNX Runtime alone (`onnx_model.py`). The metadata the service needs
(labels, preprocessing, name, version) is written into the file as a metadata property, and
the file's sha256 beside it (`<file>.sha256`, the `sha256sum` format), so one file is the
whole model and its digest can be pinned in settings.
"""

from __future__ import annotations

import inspect
import io
import json
import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import torch

from batch_video.checksums import sha256_of
from batch_video.onnx_model import METADATA_KEY, Feeds, OnnxModel, softmax

logger = logging.getLogger(__name__)

INPUT_NAME = "input"
OUTPUT_NAME = "logits"
OPSET = 18
# The largest difference of outputs (probabilities, embeddings) the export may show
# against torch.
PARITY_TOLERANCE = 1e-4
Exporter = Literal["dynamo", "torchscript"]


@dataclass(frozen=True)
class ExportReport:
    path: Path
    sha256: str
    max_abs_difference: float  # of the compared outputs, against torch on the held-out batches
    inputs_checked: int


def export_onnx(
    module: torch.nn.Module,
    path: Path,
    *,
    example: Feeds,
    metadata: Mapping[str, object],
    held_out: Sequence[Feeds],
    dynamic_axes: Mapping[str, Mapping[int, str]] | None = None,
    compare: Callable[[np.ndarray], np.ndarray] = softmax,
    exporter: Exporter | None = None,
    output_name: str = OUTPUT_NAME,
) -> ExportReport:
    """Writes `module` as one ONNX file whose inputs are `example`'s names, in its order (the
    module's positional arguments), with a dynamic batch dimension (and any other axes in
    `dynamic_axes`), then runs the `held_out` batches through torch and ONNX Runtime and
    refuses the export (ValueError) if their outputs, passed through `compare` (class
    probabilities by default), differ by more than PARITY_TOLERANCE."""
    module = module.eval().cpu()
    path.parent.mkdir(parents=True, exist_ok=True)
    axes = {name: {0: "batch"} for name in example}
    for name, extra in (dynamic_axes or {}).items():
        axes[name] = {**axes.get(name, {}), **extra}
    if exporter is None:
        exporter = "torchscript" if isinstance(module, torch.jit.ScriptModule) else "dynamo"
    model = _to_onnx(module, example, axes, exporter, output_name)
    entry = model.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = json.dumps(
        {**metadata, "input_names": list(example), "precision": "fp32"}, sort_keys=True
    )
    onnx.checker.check_model(model)
    onnx.save_model(model, str(path))
    difference = parity(module, path, held_out, compare)
    if difference > PARITY_TOLERANCE:
        path.unlink()
        raise ValueError(
            f"the ONNX export differs from torch by {difference:.2e} "
            f"(tolerance {PARITY_TOLERANCE:g}); refusing it"
        )
    checksum = write_checksum(path)
    logger.info(
        "exported", extra={"path": str(path), "sha256": checksum, "max_abs_diff": difference}
    )
    checked = sum(len(next(iter(feeds.values()))) for feeds in held_out)
    return ExportReport(path, checksum, difference, checked)


def parity(
    module: torch.nn.Module,
    path: Path,
    held_out: Sequence[Feeds],
    compare: Callable[[np.ndarray], np.ndarray] = softmax,
) -> float:
    """The largest absolute difference between torch's and ONNX Runtime's outputs on the
    `held_out` batches, both passed through `compare`."""
    model = OnnxModel.load(path, threads=1)
    worst = 0.0
    for feeds in held_out:
        arguments = [torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in model.input_names]
        with torch.inference_mode():
            expected = compare(module(*arguments).float().numpy())
        got = compare(model.run_feeds(feeds))
        worst = max(worst, float(np.abs(expected - got).max()))
    return worst


def batches(items: np.ndarray, name: str = INPUT_NAME) -> list[dict[str, np.ndarray]]:
    """`items` as batches of growing sizes (1, 2, 4, ... 64) for one input: the batch
    dimension is dynamic, and parity should hold at every size."""
    out, start, size = [], 0, 1
    while start < len(items):
        out.append({name: np.ascontiguousarray(items[start : start + size], dtype=np.float32)})
        start += size
        size = min(size * 2, 64)
    return out


def write_checksum(path: Path) -> str:
    checksum = sha256_of(path)
    path.with_name(path.name + ".sha256").write_text(f"{checksum}  {path.name}\n")
    return checksum


def _to_onnx(
    module: torch.nn.Module,
    example: Feeds,
    axes: Mapping[str, Mapping[int, str]],
    exporter: Exporter,
    output_name: str,
) -> onnx.ModelProto:
    """torch.export's exporter, or the TorchScript exporter: a TorchScript program (a
    checkpoint loaded from `.pt`) cannot be traced by torch.export, and for some modules
    (BERT-style encoders) torch.export's program does not load in ONNX Runtime."""
    arguments = tuple(torch.from_numpy(np.ascontiguousarray(a)) for a in example.values())
    names = list(example)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporters' notes on their own internals
        if exporter == "torchscript":
            buffer = io.BytesIO()
            torch.onnx.export(
                module,
                arguments,
                buffer,
                input_names=names,
                output_names=[output_name],
                dynamic_axes={**axes, output_name: {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,
            )
            return onnx.load_from_string(buffer.getvalue())
        parameters = list(inspect.signature(module.forward).parameters)
        if len(parameters) < len(names):
            raise ValueError(f"the module's forward takes {parameters}, not {names}")
        dims: dict[str, torch.export.Dim] = {}
        shapes = {
            parameter: {
                axis: dims.setdefault(label, torch.export.Dim(label, min=1, max=4096))
                for axis, label in axes[name].items()
            }
            for parameter, name in zip(parameters, names, strict=False)
        }
        program = torch.onnx.export(
            module,
            arguments,
            input_names=names,
            output_names=[output_name],
            dynamic_shapes=shapes,
            opset_version=OPSET,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    if program is None:
        raise ValueError("torch.onnx.export returned no program")
    return program.model_proto
