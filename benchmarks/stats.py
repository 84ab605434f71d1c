"""Summaries of measured values: percentiles, per-cell metrics, medians with min-max."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) with linear interpolation, as numpy's default does."""
    if not values:
        return math.nan
    if not 0 <= q <= 100:
        raise ValueError(f"percentile {q} is outside 0-100")
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def spread(values: Iterable[float]) -> dict[str, float]:
    """Median with min and max, ignoring NaN (a cell with no successful request)."""
    finite = [v for v in values if not math.isnan(v)]
    if not finite:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {
        "median": statistics.median(finite),
        "min": min(finite),
        "max": max(finite),
        "n": len(finite),
    }


@dataclass
class CellMeasurement:
    """What one contender did at one concurrency in one repetition's window."""

    window_s: float
    latencies_s: list[float] = field(default_factory=list)  # successful requests only
    errors: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    cpu_s: float = math.nan  # the contender's processes, over the window
    peak_rss_bytes: int = 0
    client_cpu_s: float = math.nan
    machine_busy_cores: float = math.nan  # every process on the machine, averaged
    # Streaming kinds only: every successful stream, inside the window or not, and the
    # window's start (time.perf_counter()); see stream_metrics.
    streams: list[Stream] | None = None
    window_start: float = math.nan


@dataclass(frozen=True)
class Stream:
    """One streamed answer, in time.perf_counter() values."""

    sent: float
    first_token: float  # the first chunk with text
    finished: float
    output_tokens: int


def stream_metrics(streams: Sequence[Stream], start: float, end: float) -> dict[str, float]:
    """Time to first token of the streams whose first token came inside the window, and
    output tokens/s over the window: each stream's tokens spread evenly from its first token
    to its end, and the part inside the window counted, so a stream that straddles the
    window's edge counts for the share it produced inside it."""
    ttft = [s.first_token - s.sent for s in streams if start <= s.first_token <= end]
    tokens = 0.0
    rates = []
    for s in streams:
        span = s.finished - s.first_token
        if span <= 0 or s.output_tokens <= 1:
            tokens += s.output_tokens if start <= s.first_token <= end else 0
            continue
        # The first token at first_token, the other n-1 spread evenly after it.
        inside = max(0.0, min(end, s.finished) - max(start, s.first_token))
        tokens += (s.output_tokens - 1) * inside / span
        tokens += 1 if start <= s.first_token <= end else 0
        if start <= s.finished <= end:
            rates.append((s.output_tokens - 1) / span)
    window = end - start
    return {
        "ttft_p50_ms": percentile(ttft, 50) * 1000,
        "ttft_p95_ms": percentile(ttft, 95) * 1000,
        "ttft_p99_ms": percentile(ttft, 99) * 1000,
        "output_tokens_per_s": tokens / window if window > 0 else math.nan,
        # Decode speed one client sees, after its first token (median over streams).
        "stream_tokens_per_s": percentile(rates, 50),
        "streams_started": float(len(ttft)),
    }


def cell_metrics(cell: CellMeasurement) -> dict[str, float]:
    completed = len(cell.latencies_s)
    total = completed + cell.errors
    streaming = (
        {}
        if cell.streams is None
        else stream_metrics(cell.streams, cell.window_start, cell.window_start + cell.window_s)
    )
    return {
        **streaming,
        "throughput_rps": completed / cell.window_s if cell.window_s > 0 else math.nan,
        "p50_ms": percentile(cell.latencies_s, 50) * 1000,
        "p95_ms": percentile(cell.latencies_s, 95) * 1000,
        "p99_ms": percentile(cell.latencies_s, 99) * 1000,
        "completed": completed,
        "errors": cell.errors,
        "error_rate": cell.errors / total if total else 0.0,
        "cpu_s_per_request": cell.cpu_s / completed if completed else math.nan,
        "peak_rss_mb": cell.peak_rss_bytes / 2**20,
        "client_cpu_s_per_request": cell.client_cpu_s / completed if completed else math.nan,
        "machine_busy_cores": cell.machine_busy_cores,
        # CPU used by neither the contender nor the load generator: other work on the machine.
        "foreign_cores": max(
            0.0, cell.machine_busy_cores - (cell.cpu_s + cell.client_cpu_s) / cell.window_s
        )
        if cell.window_s > 0
        else math.nan,
    }


def aggregate(cells: Sequence[Mapping[str, float]]) -> dict[str, dict[str, float]]:
    """Per metric, the median and min-max over repetitions of the same cell."""
    names = sorted({name for cell in cells for name in cell})
    return {name: spread(cell[name] for cell in cells if name in cell) for name in names}
