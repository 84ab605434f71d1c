"""The int8 gate: it publishes int8 only within its bounds, and always says why."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from batch_video.checksums import sha256_of
from batch_video.onnx_export import INPUT_NAME, batches, export_onnx
from batch_video.onnx_model import OnnxModel
from batch_video.quantization import (
    CPU_FLAGS,
    DYNAMIC,
    MIN_CALIBRATION_SAMPLES,
    GateReport,
    publish,
    publish_classifier,
)
from tests.onnx_models import small_cnn


@pytest.fixture(scope="module")
def fp32(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """An exported model, and a held-out set labelled with its own fp32 answers (so fp32
    scores 1.0 and any loss is what quantisation costs)."""
    rng = np.random.default_rng(2)
    items = rng.normal(size=(256, 1, 12, 12)).astype(np.float32)
    path = tmp_path_factory.mktemp("fp32") / "model.fp32.onnx"
    example = {INPUT_NAME: items[:2]}
    export_onnx(small_cnn(), path, example=example, metadata={}, held_out=batches(items[:16]))
    labels = OnnxModel.load(path).run(items).argmax(axis=1)
    return path, items, labels


def run_gate(
    fp32: tuple[Path, np.ndarray, np.ndarray], target: Path, **bounds: float
) -> GateReport:
    path, items, labels = fp32
    calibration = int(bounds.pop("calibration", 128))
    return publish_classifier(
        path,
        target,
        calibration=items[:calibration],
        held_out=items[128:],
        labels=labels[128:],
        batch_size=8,
        seconds=0.15,
        **bounds,
    )


def test_int8_is_published_when_it_meets_both_bounds(
    fp32: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    report = run_gate(fp32, tmp_path / "model.onnx", min_speedup=0.0, max_top1_loss_points=100)
    assert report.published == "int8", report.reason
    assert len(report.candidates) == 6  # three calibration methods, per tensor and channel
    assert report.metric == "top1"
    assert report.fp32_quality == 1.0  # the labels are fp32's own answers
    assert report.best is not None
    assert report.speedup is not None
    published = OnnxModel.load(tmp_path / "model.onnx")
    assert published.metadata["precision"] == "int8"
    assert (tmp_path / "model.onnx.sha256").read_text().split()[0] == sha256_of(
        tmp_path / "model.onnx"
    )
    assert (tmp_path / "model.int8.onnx").is_file()
    written = json.loads((tmp_path / "gate.json").read_text())
    assert written["published"] == "int8"
    assert set(written["cpu_flags"]) in (set(CPU_FLAGS), set())  # empty off Linux


def test_too_few_calibration_samples_keep_fp32(
    fp32: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    few = MIN_CALIBRATION_SAMPLES - 1
    report = run_gate(fp32, tmp_path / "model.onnx", min_speedup=0.0, calibration=few)
    assert report.published == "fp32"
    assert report.calibration_samples < MIN_CALIBRATION_SAMPLES
    assert f"fewer than the {MIN_CALIBRATION_SAMPLES} needed" in report.reason
    assert OnnxModel.load(tmp_path / "model.onnx").metadata["precision"] == "fp32"
    assert json.loads((tmp_path / "gate.json").read_text())["published"] == "fp32"


def test_a_loss_bound_no_candidate_meets_keeps_fp32(
    fp32: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    # fp32 scores 1.0 on its own labels: no int8 model can be 1 point better.
    report = run_gate(fp32, tmp_path / "model.onnx", min_speedup=0.0, max_top1_loss_points=-1)
    assert report.published == "fp32"
    assert "loses more than -0.01 of top1" in report.reason
    assert not (tmp_path / "model.int8.onnx").exists()


def test_int8_that_is_not_fast_enough_keeps_fp32_and_says_so(
    fp32: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    report = run_gate(fp32, tmp_path / "model.onnx", min_speedup=1000.0, max_top1_loss_points=100)
    assert report.published == "fp32"
    assert "under the 1000x it must reach" in report.reason
    assert "avx2" in report.reason or not report.cpu_flags
    assert report.speedup is not None
    assert report.speedup < 1000
    assert (tmp_path / "model.int8.onnx").is_file()  # kept for inspection


def test_dynamic_int8_needs_no_calibration_and_any_metric_can_bound_it(
    fp32: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    path, items, labels = fp32
    scored: list[str] = []

    def agreement(model: OnnxModel) -> float:  # the caller's own quality metric
        scored.append(model.metadata["precision"])  # type: ignore[arg-type]
        return float((model.run(items[128:]).argmax(1) == labels[128:]).mean())

    report = publish(
        path,
        tmp_path / "model.onnx",
        quality=agreement,
        metric="agreement",
        max_loss=1.0,
        quality_set="128 items",
        speed_batch={INPUT_NAME: items[:8]},
        methods=[DYNAMIC],
        min_speedup=0.0,
        seconds=0.15,
    )
    assert report.calibration_samples == 0
    assert [(c.method, c.per_channel) for c in report.candidates] == [
        (DYNAMIC, False),
        (DYNAMIC, True),
    ]
    assert sorted(scored) == ["fp32", "int8", "int8"]
    assert report.published == "int8", report.reason
    assert "of agreement" in report.reason
    assert json.loads((tmp_path / "gate.json").read_text())["metric"] == "agreement"


def test_a_candidate_that_cannot_be_quantised_is_reported_not_fatal(
    fp32: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    path, items, _ = fp32
    report = publish(
        path,
        tmp_path / "model.onnx",
        quality=lambda model: 1.0,
        metric="none",
        max_loss=0.0,
        quality_set="none",
        speed_batch={INPUT_NAME: items[:8]},
        # Calibration batches of a shape the model does not take: the calibrator fails.
        calibration=[{INPUT_NAME: np.zeros((8, 3, 5, 5), np.float32)}] * 8,
        methods=["minmax"],
        min_speedup=0.0,
        seconds=0.15,
    )
    assert report.published == "fp32"
    assert set(report.failed) == {"minmax per-tensor", "minmax per-channel"}
    assert "no int8 candidate could be made" in report.reason
    assert OnnxModel.load(tmp_path / "model.onnx").metadata["precision"] == "fp32"
