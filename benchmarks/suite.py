"""What a project kind's benchmark declares: contenders, its limit, targets and figures.

A kind adds `benchmarks/<kind with underscores>/__init__.py` with a `build(workdir,
device, options)` that returns a Suite. Streaming kinds add their own metrics to the
cells (tokens/s, time to first token) by giving the Contender an `exchange` that reads the
stream and reports when its first token came and how many tokens it carried (see
benchmarks/streaming.py), and name the figures to chart; the runner, plan and report
stay as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from benchmarks.loadgen import Exchange, RequestSpec, plain_exchange
from benchmarks.processes import ServerSpec

# results["summary"][contender][str(concurrency)][metric] -> {"median", "min", "max", "n"}
Summary = Mapping[str, Mapping[str, Mapping[str, Mapping[str, float]]]]


@dataclass
class Contender:
    name: str
    description: str
    servers: Sequence[ServerSpec]  # started once; their process trees are measured
    base_url: str
    requests: Sequence[RequestSpec]  # the same payloads, in each contender's wire format
    # A response's best label and its probability: every contender must give the same.
    top_label: Callable[[httpx.Response], tuple[str, float]]
    settings: Mapping[str, Any] = field(default_factory=dict)
    # How one request is sent and its answer read under load: plain_exchange reads a whole
    # response; a streaming exchange returns {"first_token": t, "output_tokens": n}.
    exchange: Exchange = plain_exchange
    streaming: bool = False
    # The concurrency levels this contender runs at (None: every level of the run).
    levels: Sequence[int] | None = None
    # Contenders must agree on top_label with the others of their group (same model and
    # numerics); different groups are separate comparisons in one run.
    agreement_group: str = ""
    # How far its scores may sit from the group's first contender's: a quantised model
    # gives the same labels with scores a little apart.
    score_tolerance: float = 1e-3


@dataclass
class Outcome:
    passed: bool | None  # None: not measured
    measured: str


@dataclass
class Target:
    text: str
    check: Callable[[Mapping[str, Any]], Outcome]  # given the results document


@dataclass
class Figure:
    """One panel of the chart: a metric against concurrency, one line per contender."""

    metric: str
    title: str
    unit: str
    log_y: bool = False


@dataclass
class Suite:
    kind: str
    contenders: Sequence[Contender]
    targets: Sequence[Target]
    figures: Sequence[Figure]
    throughput_unit: str  # what one request is worth: "images/s", "tokens/s", ...
    # One in-process measurement of the limit, run once per repetition; returns
    # {"best": value, "unit": ..., ...details}.
    limit: Callable[[], Mapping[str, Any]] | None = None
    limit_description: str = ""
    notes: Sequence[str] = ()
    settings: Mapping[str, Any] = field(default_factory=dict)
    # The run's defaults for this kind; the command line overrides them.
    concurrencies: Sequence[int] = (1, 4, 16, 32, 64)
    warmup_s: float = 1.5
    duration_s: float = 5.0
    ramp_s: float = 0.0  # start the clients spread over this part of the warm-up
    # Extra columns of the cells table: (metric, header, format), after the throughput.
    columns: Sequence[tuple[str, str, str]] = ()
    # A kind that is not an HTTP load test (no contenders) measures in the harness's own
    # process instead: `measure()` returns its results, with "tables" for the report
    # ([{"title", "columns", "rows"}]); the targets read the same document.
    measure: Callable[[], Mapping[str, Any]] | None = None
