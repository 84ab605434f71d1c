"""What a project kind's benchmark declares: contenders, its limit, targets and figures.

A kind adds `benchmarks/<kind with underscores>/__init__.py` with a `build(workdir,
device, options)` that returns a Suite. Streaming kinds add their own metrics to the
cells (tokens/s, time to first token) by giving the Contender a `measure` of their own and
naming the figures to chart; the runner, plan, statistics and report stay as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from benchmarks.loadgen import RequestSpec
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
