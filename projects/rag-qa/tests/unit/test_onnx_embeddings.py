"""The embedder on ONNX Runtime: exported from the torch model, equal to it, gated on the
project's own retrieval QA set, and refused with a reason when the folder is wrong."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from rag_qa.embedder_export import MAX_RECALL_LOSS, PublishedEmbedder, export_embedder
from rag_qa.embeddings import Embedder
from rag_qa.evaluation import evaluate, load_questions
from rag_qa.observability import Metrics
from rag_qa.onnx_embeddings import OnnxEncoder
from rag_qa.onnx_export import PARITY_TOLERANCE
from rag_qa.onnx_model import InvalidOnnxModel, OnnxModel
from rag_qa.settings import Settings
from tests.conftest import CORPUS, PROJECT
from tests.unit.test_embedder_memory import peak_of_full_batches

QUESTIONS = load_questions(PROJECT / "eval" / "qa.jsonl")
TEXTS = [
    "",
    "Bell Rock",
    "The Bell Rock lighthouse stands off the coast of Angus in Scotland.",
    "Ünïcödé, emoji 🐝 and CJK 灯塔 in one line",
    " ".join(["a sentence far past the model's window of tokens"] * 80),
]


def settings(**overrides: object) -> Settings:
    # A batch of 8 keeps the gate's timing short; the service's default is 32.
    values: dict[str, object] = {"device": "cpu", "log_json": False, "embedding_batch_size": 8}
    return Settings(**{**values, **overrides})  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> PublishedEmbedder:
    folder = tmp_path_factory.mktemp("embedder")
    return export_embedder(settings(), folder, corpus=CORPUS, questions=QUESTIONS)


def embedder(**overrides: object) -> Embedder:
    loaded = Embedder(settings(**overrides), Metrics())
    loaded.load()
    return loaded


def test_the_export_embeds_as_torch_does(exported: PublishedEmbedder) -> None:
    assert exported.export.max_abs_difference <= PARITY_TOLERANCE
    folder = exported.folder
    for name in ("model.onnx", "model.fp32.onnx", "gate.json", "model.onnx.sha256"):
        assert (folder / name).is_file(), name
    expected = embedder(embedding_int8=False).embed(TEXTS)
    fp32 = OnnxModel.load(folder / "model.fp32.onnx")
    tokenizer = OnnxEncoder.load(settings(embedding_model_path=folder)).tokenizer
    got = OnnxEncoder.wrap(fp32, tokenizer).encode(TEXTS, batch_size=2)
    assert got.shape == expected.shape == (len(TEXTS), 384)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)
    assert float(np.abs(got - expected).max()) <= PARITY_TOLERANCE


def test_the_gate_bounds_int8_by_recall_on_the_qa_set(exported: PublishedEmbedder) -> None:
    gate = json.loads((exported.folder / "gate.json").read_text())
    assert gate["metric"] == "recall@5"
    assert gate["max_loss"] == MAX_RECALL_LOSS
    assert [(c["method"], c["per_channel"]) for c in gate["candidates"]] == [
        ("dynamic", False),
        ("dynamic", True),
    ]
    assert gate["fp32_quality"] >= 0.8
    assert gate["batch_size"] == 8
    if gate["published"] == "int8":
        assert gate["loss"] <= MAX_RECALL_LOSS
        assert gate["speedup"] >= gate["min_speedup"]
    else:
        assert "kept fp32" in gate["reason"]
    published = OnnxModel.load(exported.folder / "model.onnx")
    assert published.metadata["precision"] == gate["published"]


def test_the_service_setting_retrieves_with_the_published_model(
    exported: PublishedEmbedder, tmp_path: Path
) -> None:
    on_onnx = settings(embedding_runtime="onnxruntime", embedding_model_path=exported.folder)
    report = evaluate(on_onnx, CORPUS, QUESTIONS, 5)
    assert report.recall >= exported.gate.fp32_quality - MAX_RECALL_LOSS  # type: ignore[operator]
    loaded = embedder(embedding_runtime="onnxruntime", embedding_model_path=exported.folder)
    assert loaded.dimension == 384
    assert loaded.max_tokens == 256
    assert loaded.count_tokens(["Bell Rock"]) == embedder().count_tokens(["Bell Rock"])
    vectors = loaded.embed(TEXTS, purpose="query")
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-3)


def test_the_working_memory_holds_a_full_batch_on_onnxruntime(
    exported: PublishedEmbedder,
) -> None:
    loaded = embedder(embedding_runtime="onnxruntime", embedding_model_path=exported.folder)
    peak = peak_of_full_batches(loaded)
    print(f"peak {peak / 2**20:.0f} MB, set aside {loaded.working_bytes / 2**20:.0f} MB")
    assert peak <= loaded.working_bytes


def _copy(exported: PublishedEmbedder, target: Path) -> Path:
    shutil.copytree(exported.folder, target)
    return target


def test_onnxruntime_without_a_folder_is_a_clear_error() -> None:
    with pytest.raises(InvalidOnnxModel, match="needs APP_EMBEDDING_MODEL_PATH"):
        embedder(embedding_runtime="onnxruntime")


def test_a_truncated_model_is_refused(exported: PublishedEmbedder, tmp_path: Path) -> None:
    folder = _copy(exported, tmp_path / "cut")
    model = folder / "model.onnx"
    model.write_bytes(model.read_bytes()[:4096])
    with pytest.raises(InvalidOnnxModel, match="cannot load"):
        embedder(embedding_runtime="onnxruntime", embedding_model_path=folder)


def test_a_pinned_digest_that_differs_is_refused(exported: PublishedEmbedder) -> None:
    with pytest.raises(InvalidOnnxModel, match="sha256"):
        embedder(
            embedding_runtime="onnxruntime",
            embedding_model_path=exported.folder,
            embedding_model_sha256="0" * 64,
        )


def test_a_folder_without_its_tokenizer_is_refused(
    exported: PublishedEmbedder, tmp_path: Path
) -> None:
    folder = tmp_path / "bare"
    folder.mkdir()
    shutil.copyfile(exported.folder / "model.onnx", folder / "model.onnx")
    with pytest.raises(InvalidOnnxModel, match="no tokenizer"):
        embedder(embedding_runtime="onnxruntime", embedding_model_path=folder)


def test_a_model_that_is_not_an_embedder_is_refused(
    exported: PublishedEmbedder, tmp_path: Path
) -> None:
    folder = _copy(exported, tmp_path / "other")
    image = helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3])
    output = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 3])
    graph = helper.make_graph(
        [helper.make_node("Identity", ["input"], ["out"])], "g", [image], [output]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 10
    onnx.save_model(model, str(folder / "model.onnx"))
    with pytest.raises(InvalidOnnxModel, match="not an embedder export"):
        embedder(embedding_runtime="onnxruntime", embedding_model_path=folder)
