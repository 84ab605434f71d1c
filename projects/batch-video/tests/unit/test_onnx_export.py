"""Export from torch to ONNX: a dynamic batch, the metadata inside, parity with torch."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import numpy as np
import pytest
import torch

from batch_video.checksums import sha256_of
from batch_video.onnx_export import (
    INPUT_NAME,
    PARITY_TOLERANCE,
    ExportReport,
    batches,
    export_onnx,
    parity,
)
from batch_video.onnx_model import OnnxModel
from tests.onnx_models import small_cnn


@pytest.fixture(scope="module")
def inputs() -> np.ndarray:
    return np.random.default_rng(0).normal(size=(40, 1, 12, 12)).astype(np.float32)


def export(
    module: torch.nn.Module, path: Path, inputs: np.ndarray, **metadata: object
) -> ExportReport:
    example = {INPUT_NAME: inputs[:2]}
    return export_onnx(module, path, example=example, metadata=metadata, held_out=batches(inputs))


def test_the_export_matches_torch_at_every_batch_size(tmp_path: Path, inputs: np.ndarray) -> None:
    module = small_cnn()
    report = export(module, tmp_path / "m.onnx", inputs, name="s")
    assert report.max_abs_difference <= PARITY_TOLERANCE
    assert report.inputs_checked == 40
    model = OnnxModel.load(report.path)
    assert model.inputs[0].shape == (1, 12, 12)  # the batch dimension is dynamic
    for size in (1, 3, 17):
        assert model.run(inputs[:size]).shape == (size, 4)
    assert model.metadata["name"] == "s"
    assert model.metadata["precision"] == "fp32"
    assert model.metadata["input_names"] == model.input_names == [INPUT_NAME]


def test_the_digest_is_written_beside_the_file(tmp_path: Path, inputs: np.ndarray) -> None:
    path = tmp_path / "m.onnx"
    report = export(small_cnn(), path, inputs)
    line = (tmp_path / "m.onnx.sha256").read_text()
    assert line == f"{sha256_of(path)}  m.onnx\n"
    assert report.sha256 == sha256_of(path)


def test_a_torchscript_program_exports_too(tmp_path: Path, inputs: np.ndarray) -> None:
    scripted = torch.jit.script(small_cnn())
    report = export(scripted, tmp_path / "s.onnx", inputs)
    assert report.max_abs_difference <= PARITY_TOLERANCE


def test_an_export_that_differs_from_torch_is_detected(tmp_path: Path, inputs: np.ndarray) -> None:
    path = tmp_path / "m.onnx"
    export(small_cnn(seed=0), path, inputs)
    # The same file judged against another network: parity must see the difference.
    assert parity(small_cnn(seed=1), path, batches(inputs)) > PARITY_TOLERANCE


def test_the_metadata_is_json_inside_the_model(tmp_path: Path, inputs: np.ndarray) -> None:
    import onnx

    path = tmp_path / "m.onnx"
    export(small_cnn(), path, inputs, labels=4)
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(props["service_metadata"])["labels"] == 4


class _Pooled(torch.nn.Module):
    """Two inputs, a variable length: token ids and their mask, mean-pooled embeddings."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.table = torch.nn.Embedding(50, 6)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        weights = mask.unsqueeze(-1).float()
        return (self.table(ids) * weights).sum(1) / weights.sum(1).clamp(min=1)


@pytest.mark.parametrize("exporter", ["dynamo", "torchscript"])
def test_a_module_of_several_int64_inputs_exports_with_a_dynamic_length(
    tmp_path: Path, exporter: Literal["dynamo", "torchscript"]
) -> None:
    rng = np.random.default_rng(0)

    def feeds(batch: int, length: int) -> dict[str, np.ndarray]:
        mask = np.ones((batch, length), np.int64)
        mask[0, length // 2 :] = 0  # padding
        return {"ids": rng.integers(0, 50, (batch, length)), "mask": mask}

    report = export_onnx(
        _Pooled(),
        tmp_path / "e.onnx",
        example=feeds(2, 5),
        metadata={},
        held_out=[feeds(1, 3), feeds(4, 9), feeds(3, 17)],
        dynamic_axes={"ids": {1: "length"}, "mask": {1: "length"}},
        compare=lambda outputs: outputs,
        exporter=exporter,
        output_name="pooled",
    )
    assert report.max_abs_difference <= PARITY_TOLERANCE
    assert report.inputs_checked == 8
    model = OnnxModel.load(report.path)
    assert [(i.name, i.dtype, i.shape) for i in model.inputs] == [
        ("ids", np.dtype(np.int64), (None,)),
        ("mask", np.dtype(np.int64), (None,)),
    ]
    assert model.run_feeds(feeds(2, 30)).shape == (2, 6)
