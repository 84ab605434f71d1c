"""Loading an ONNX model: every bad file is refused with a reason, never a crash."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from batch_video.onnx_export import INPUT_NAME, export_onnx
from batch_video.onnx_model import InvalidOnnxModel, OnnxModel, resolve_device, softmax
from tests.onnx_models import small_cnn


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "m.onnx"
    inputs = np.random.default_rng(1).normal(size=(8, 1, 12, 12)).astype(np.float32)
    example = {INPUT_NAME: inputs}
    export_onnx(small_cnn(), path, example=example, metadata={}, held_out=[example])
    return path


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidOnnxModel, match="does not exist"):
        OnnxModel.load(tmp_path / "absent.onnx")


def test_a_truncated_file_is_refused(exported: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "cut.onnx"
    truncated.write_bytes(exported.read_bytes()[: exported.stat().st_size // 2])
    with pytest.raises(InvalidOnnxModel, match="cannot load"):
        OnnxModel.load(truncated)


def test_a_digest_mismatch_is_refused(exported: Path) -> None:
    with pytest.raises(InvalidOnnxModel, match="sha256"):
        OnnxModel.load(exported, expected_sha256="00" * 32)


def test_a_fixed_batch_dimension_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "fixed.onnx"
    program = torch.onnx.export(small_cnn(), (torch.zeros(1, 1, 12, 12),), dynamo=True)
    assert program is not None
    program.save(str(path))
    with pytest.raises(InvalidOnnxModel, match="dynamic batch"):
        OnnxModel.load(path)


def _graph_model(path: Path, inputs: list[tuple[str, int]]) -> Path:
    """A one-node model (Identity of its first input) with these inputs and element types."""
    values = [helper.make_tensor_value_info(n, t, ["batch", 3]) for n, t in inputs]
    output = helper.make_tensor_value_info("out", inputs[0][1], ["batch", 3])
    node = helper.make_node("Identity", [inputs[0][0]], ["out"])
    graph = helper.make_graph([node], "g", values, [output])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.save_model(model, str(path))
    return path


def test_a_model_of_several_inputs_runs_on_named_feeds(tmp_path: Path) -> None:
    path = _graph_model(tmp_path / "two.onnx", [("a", TensorProto.INT64), ("b", TensorProto.FLOAT)])
    model = OnnxModel.load(path)
    assert model.input_names == ["a", "b"]
    ids = np.arange(6).reshape(2, 3)
    np.testing.assert_array_equal(model.run_feeds({"a": ids, "b": np.zeros((2, 3))}), ids)
    with pytest.raises(InvalidOnnxModel, match="not one input"):
        model.check_input((3,))  # an image model's check: this is no image model


@pytest.mark.parametrize("element", [TensorProto.DOUBLE, TensorProto.INT32, TensorProto.STRING])
def test_an_input_that_is_not_float32_or_int64_is_refused(tmp_path: Path, element: int) -> None:
    path = _graph_model(tmp_path / "other.onnx", [("a", element)])
    with pytest.raises(InvalidOnnxModel, match="not float32 or int64"):
        OnnxModel.load(path)


def test_an_input_renamed_after_export_is_refused(exported: Path, tmp_path: Path) -> None:
    model = onnx.load(str(exported))
    old = model.graph.input[0].name
    model.graph.input[0].name = "images"
    for node in model.graph.node:
        node.input[:] = ["images" if name == old else name for name in node.input]
    renamed = tmp_path / "renamed.onnx"
    onnx.save_model(model, str(renamed))
    with pytest.raises(InvalidOnnxModel, match=r"metadata says \['input'\]"):
        OnnxModel.load(renamed)


def test_item_shapes_are_checked(exported: Path) -> None:
    model = OnnxModel.load(exported)
    model.check_input((1, 12, 12))
    with pytest.raises(InvalidOnnxModel, match="takes items of shape"):
        model.check_input((3, 12, 12))
    with pytest.raises(InvalidOnnxModel, match="takes items of shape"):
        model.check_input((12, 12))


def test_cuda_without_the_gpu_build_is_a_clear_error(exported: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(InvalidOnnxModel, match="onnxruntime-gpu"):
        OnnxModel.load(exported, device="cuda")


def test_softmax_rows_sum_to_one() -> None:
    rows = softmax(np.array([[1000.0, 0.0], [0.0, 0.0]], dtype=np.float32))
    np.testing.assert_allclose(rows.sum(axis=1), 1.0)
    assert rows[1, 0] == pytest.approx(0.5)


def test_auto_means_cuda_only_where_this_onnxruntime_has_it() -> None:
    import onnxruntime as ort

    has_cuda = "CUDAExecutionProvider" in ort.get_available_providers()
    assert resolve_device("auto") == ("cuda" if has_cuda else "cpu")
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("cuda") == "cuda"
