"""int8 quantisation behind a gate: int8 is published only where it pays.

int8 is not faster everywhere: dynamic quantisation of a CNN ran slower than fp32 on the
CPUs this was built on, and users report static int8 slower on some CPUs too (onnxruntime
#20052, #12854); on a tiny network the quantise/dequantise steps can cost more than the
integer arithmetic saves. So the gate quantises every way it is given (static QDQ with
each calibration method, dynamic; weights per tensor and per channel), measures each
candidate on this host at the service's batch size against fp32 ONNX Runtime, and
publishes the fastest candidate only if it is at least `min_speedup` times faster and
loses at most `max_loss` of the caller's quality metric (top-1 of a classifier, recall@k
of a retriever) on a held-out set; otherwise it publishes fp32 and says why. Its report
(`gate.json`, beside the model) records every figure and the CPU flags it saw.

Which ways pay depends on the network: static QDQ suits CNNs; for a BERT-style encoder
the histogram calibrators fail on the attention mask's infinite bias and MinMax loses the
embedding (cosine 0.23 to fp32), while dynamic int8 keeps it (0.99 per channel).

A build-time step (the `export` extra: onnx, and onnxruntime's quantisation tools).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.shape_inference import quant_pre_process

from batch_video.onnx_export import INPUT_NAME, write_checksum
from batch_video.onnx_model import METADATA_KEY, Feeds, OnnxModel

logger = logging.getLogger(__name__)

# Fewer calibration items than this give activation ranges too noisy to trust.
MIN_CALIBRATION_SAMPLES = 64
# The gate's default speed bound: int8 this much faster than fp32.
MIN_SPEEDUP = 1.3
# A classifier's default accuracy bound: at most this many points of top-1 lost.
MAX_TOP1_LOSS_POINTS = 0.5
REPORT_FILE = "gate.json"
# The CPU features int8 speed depends on: VNNI (int8 dot products), AMX (int8 tiles).
CPU_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8")
# How a candidate is quantised: static QDQ with a calibration method, or dynamic (weights
# ahead of time, activations per call; no calibration set).
STATIC_METHODS: dict[str, CalibrationMethod] = {
    "minmax": CalibrationMethod.MinMax,
    "entropy": CalibrationMethod.Entropy,
    "percentile": CalibrationMethod.Percentile,
}
DYNAMIC = "dynamic"
Key = tuple[str, bool]  # a model of the gate: (method or "fp32", per-channel)


@dataclass(frozen=True)
class Candidate:
    method: str  # minmax, entropy, percentile (static calibration) or dynamic
    per_channel: bool  # weight scales per output channel, else one per tensor
    quality: float
    items_per_s: float

    @property
    def name(self) -> str:
        return f"{self.method} {'per-channel' if self.per_channel else 'per-tensor'}"


@dataclass
class GateReport:
    published: str  # "int8" or "fp32"
    reason: str
    metric: str  # the quality the bound is on: top1, recall@5, ...
    quality_set: str  # what it was measured on
    batch_size: int
    threads: int
    min_speedup: float
    max_loss: float  # of the metric, in its own units (0.005 of top-1 is half a point)
    calibration_samples: int
    fp32_quality: float | None = None
    fp32_items_per_s: float | None = None
    best: Candidate | None = None
    speedup: float | None = None
    loss: float | None = None
    candidates: list[Candidate] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # candidates that did not quantise
    cpu_flags: dict[str, bool] = field(default_factory=dict)
    cpu: str = ""
    onnxruntime: str = ort.__version__
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    def write(self, folder: Path) -> Path:
        path = folder / REPORT_FILE
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")
        return path


def cpu_flags() -> dict[str, bool]:
    """Which of CPU_FLAGS this CPU reports (Linux's /proc/cpuinfo; empty elsewhere)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    present = set(line.partition(":")[2].split())
    return {flag: flag in present for flag in CPU_FLAGS}


def publish(
    fp32: Path,
    target: Path,
    *,
    quality: Callable[[OnnxModel], float],
    metric: str,
    max_loss: float,
    quality_set: str,
    speed_batch: Feeds,
    calibration: Sequence[Feeds] = (),
    methods: Sequence[str] = tuple(STATIC_METHODS),
    threads: int = 1,
    min_speedup: float = MIN_SPEEDUP,
    seconds: float = 0.5,
) -> GateReport:
    """Writes the published model to `target` (int8 if it passes the gate, else a copy of
    `fp32`) with its `.sha256`, the best int8 candidate beside it as `<stem>.int8.onnx`, and
    the report as `gate.json`. `quality(model)` scores a model (higher is better);
    `speed_batch` is one batch at the service's batch size; `calibration` holds batches of
    one shape for the static methods; every method is tried per tensor and per channel."""
    batch_size = len(next(iter(speed_batch.values())))
    report = GateReport(
        published="fp32",
        reason="",
        metric=metric,
        quality_set=quality_set,
        batch_size=batch_size,
        threads=threads,
        min_speedup=min_speedup,
        max_loss=max_loss,
        calibration_samples=sum(len(next(iter(b.values()))) for b in calibration),
        cpu_flags=cpu_flags(),
        cpu=platform.processor() or platform.machine(),
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    chosen = fp32
    static = any(method in STATIC_METHODS for method in methods)
    if static and report.calibration_samples < MIN_CALIBRATION_SAMPLES:
        report.reason = (
            f"{report.calibration_samples} calibration samples, fewer than the "
            f"{MIN_CALIBRATION_SAMPLES} needed for trustworthy activation ranges; kept fp32"
        )
    else:
        with tempfile.TemporaryDirectory(prefix="int8-") as scratch:
            files = _quantise(fp32, Path(scratch), methods, calibration, report)
            chosen = _judge(files, target, report, quality, speed_batch, seconds)
            if chosen != fp32:
                shutil.copyfile(chosen, target)
    if chosen == fp32 and fp32.resolve() != target.resolve():
        shutil.copyfile(fp32, target)
    write_checksum(target)
    report.write(target.parent)
    logger.info("gate", extra={"published": report.published, "reason": report.reason})
    return report


def publish_classifier(
    fp32: Path,
    target: Path,
    *,
    calibration: np.ndarray,
    held_out: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    threads: int = 1,
    min_speedup: float = MIN_SPEEDUP,
    max_top1_loss_points: float = MAX_TOP1_LOSS_POINTS,
    seconds: float = 0.5,
) -> GateReport:
    """`publish` for a classifier of one float input: static QDQ calibrated on full batches
    of `batch_size` from `calibration`, top-1 on `held_out` against `labels` (their true
    classes), timed on a batch of `batch_size` held-out items."""
    size = min(batch_size, len(calibration)) or 1
    return publish(
        fp32,
        target,
        quality=lambda model: top1(model, held_out, labels, batch_size),
        metric="top1",
        max_loss=max_top1_loss_points / 100,
        quality_set=f"{len(held_out)} held-out items",
        speed_batch={INPUT_NAME: np.resize(held_out, (batch_size, *held_out.shape[1:]))},
        calibration=[
            {INPUT_NAME: calibration[i : i + size]}
            for i in range(0, len(calibration) - size + 1, size)
        ],
        threads=threads,
        min_speedup=min_speedup,
        seconds=seconds,
    )


def top1(model: OnnxModel, items: np.ndarray, labels: np.ndarray, batch_size: int) -> float:
    """A classifier's top-1 accuracy on `items` (one float input) against `labels`."""
    starts = range(0, len(items), batch_size)
    predicted = np.concatenate([model.run(items[i : i + batch_size]).argmax(1) for i in starts])
    return round(float((predicted == labels).mean()), 6)


def _quantise(
    fp32: Path,
    scratch: Path,
    methods: Sequence[str],
    calibration: Sequence[Feeds],
    report: GateReport,
) -> dict[Key, Path]:
    """Every candidate that quantises, by key; those that fail are noted in `report`."""
    prepared = scratch / "prepared.onnx"
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    files: dict[Key, Path] = {("fp32", False): fp32}
    for method in methods:
        for per_channel in (False, True):
            path = scratch / f"{method}-{per_channel}.onnx"
            try:
                # The calibrators print their progress; the gate's report says what matters.
                with contextlib.redirect_stdout(io.StringIO()):
                    _quantise_one(prepared, path, method, per_channel, calibration)
            except Exception as exc:  # a calibrator that cannot handle this graph
                name = f"{method} {'per-channel' if per_channel else 'per-tensor'}"
                report.failed[name] = f"{type(exc).__name__}: {exc}"[:300]
                logger.warning("int8 candidate failed", extra={"candidate": name})
                continue
            _copy_metadata(fp32, path)
            files[(method, per_channel)] = path
    return files


def _quantise_one(
    prepared: Path, path: Path, method: str, per_channel: bool, calibration: Sequence[Feeds]
) -> None:
    if method == DYNAMIC:
        quantize_dynamic(
            str(prepared), str(path), weight_type=QuantType.QInt8, per_channel=per_channel
        )
        return
    quantize_static(
        str(prepared),
        str(path),
        _Batches(calibration),
        quant_format=QuantFormat.QDQ,
        per_channel=per_channel,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        calibrate_method=STATIC_METHODS[method],
    )


def _judge(
    files: dict[Key, Path],
    target: Path,
    report: GateReport,
    quality: Callable[[OnnxModel], float],
    speed_batch: Feeds,
    seconds: float,
) -> Path:
    """Measures every candidate, fills `report`; the file to publish."""
    fp32 = files[("fp32", False)]
    if len(files) == 1:
        report.reason = "no int8 candidate could be made (see failed); kept fp32"
        return fp32
    models = {key: OnnxModel.load(path, threads=report.threads) for key, path in files.items()}
    speed = _items_per_second(models, speed_batch, seconds)
    scores = {key: round(float(quality(model)), 6) for key, model in models.items()}
    baseline = scores.pop(("fp32", False))
    report.fp32_quality, report.fp32_items_per_s = baseline, speed[("fp32", False)]
    report.candidates = [
        Candidate(method, per_channel, scores[(method, per_channel)], speed[(method, per_channel)])
        for method, per_channel in scores
    ]
    bound = report.max_loss
    accurate = [c for c in report.candidates if baseline - c.quality <= bound + 1e-9]
    if not accurate:
        best_quality = max(c.quality for c in report.candidates)
        report.reason = (
            f"every int8 candidate loses more than {bound:g} of {report.metric} (fp32 "
            f"{baseline:.4f}, best int8 {best_quality:.4f}); kept fp32"
        )
        return fp32
    best = max(accurate, key=lambda c: c.items_per_s)
    report.best = best
    report.speedup = round(best.items_per_s / report.fp32_items_per_s, 3)
    report.loss = round(baseline - best.quality, 6)
    best_file = files[(best.method, best.per_channel)]
    shutil.copyfile(best_file, target.with_name(f"{target.stem}.int8.onnx"))
    flags = ", ".join(f"{flag} {'yes' if on else 'no'}" for flag, on in report.cpu_flags.items())
    measured = f"int8 ({best.name}) runs {report.speedup:.2f}x fp32 at batch {report.batch_size}"
    if report.speedup < report.min_speedup:
        report.reason = (
            f"{measured} on this CPU ({flags}), under the {report.min_speedup:g}x it must "
            "reach; kept fp32"
        )
        return fp32
    report.published = "int8"
    report.reason = (
        f"{measured} on this CPU ({flags}) and loses {report.loss:.4f} of {report.metric}"
    )
    return best_file


class _Batches(CalibrationDataReader):
    """The calibration batches, fed to the calibrator one by one (the histogram
    calibrators need every batch the same shape)."""

    def __init__(self, batches: Sequence[Feeds]) -> None:
        self._batches: Iterator[Feeds] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._batches, None)
        return None if batch is None else dict(batch)


def _copy_metadata(source: Path, target: Path) -> None:
    """Quantisation drops the model's metadata properties, which the service needs; the
    copy says the model is int8."""
    model = onnx.load(str(target))
    del model.metadata_props[:]
    for entry in onnx.load(str(source), load_external_data=False).metadata_props:
        value = entry.value
        if entry.key == METADATA_KEY:
            value = json.dumps({**json.loads(value), "precision": "int8"}, sort_keys=True)
        model.metadata_props.add(key=entry.key, value=value)
    onnx.save_model(model, str(target))


def _items_per_second(
    models: dict[Key, OnnxModel], batch: Feeds, seconds: float
) -> dict[Key, float]:
    """Items/s of each model on one batch, measured in interleaved rounds so that a busy
    host slows every model alike; the median round counts."""
    size = len(next(iter(batch.values())))
    for model in models.values():
        for _ in range(3):
            model.run_feeds(batch)
    rounds: dict[Key, list[float]] = {key: [] for key in models}
    for _ in range(3):
        for name, model in models.items():
            runs, started = 0, time.perf_counter()
            while (elapsed := time.perf_counter() - started) < seconds / 3 or runs < 2:
                model.run_feeds(batch)
                runs += 1
            rounds[name].append(runs * size / elapsed)
    return {name: round(statistics.median(values), 2) for name, values in rounds.items()}
