"""Runs a suite: starts every contender, checks they agree, then drives the cells in
interleaved order and gathers one results document."""

from __future__ import annotations

import asyncio
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks import processes, stats
from benchmarks.loadgen import Record, closed_loop
from benchmarks.plan import interleaved
from benchmarks.processes import ProcessTree
from benchmarks.suite import Contender, Suite

RESUME_SETTLE_S = 0.5


@dataclass(frozen=True)
class RunOptions:
    concurrencies: Sequence[int]
    repetitions: int
    warmup_s: float
    duration_s: float
    request_timeout_s: float = 60.0
    ramp_s: float = 0.0  # clients start spread over this many seconds of the warm-up


def run(suite: Suite, options: RunOptions, log_dir: Path) -> dict[str, Any]:
    specs = _unique_servers(suite.contenders)
    print(f"starting {len(specs)} servers", flush=True)
    with processes.running(specs, log_dir) as servers:
        pids = {server.spec.name: server.pid for server in servers}
        trees = {
            c.name: ProcessTree([pids[spec.name] for spec in c.servers]) for c in suite.contenders
        }
        agreement = asyncio.run(_check_agreement(suite.contenders))
        idle = _idle_cpu(trees, seconds=3.0)
        print(f"idle CPU (cores): {idle}", flush=True)
        for tree in trees.values():
            tree.suspend()
        try:
            cells, limits = asyncio.run(_drive(suite, options, trees))
        finally:
            for tree in trees.values():
                tree.resume()
    return {
        "agreement": agreement,
        "idle_cpu_cores": idle,
        "cells": cells,
        "limit_runs": limits,
    }


def _unique_servers(contenders: Sequence[Contender]) -> list[processes.ServerSpec]:
    seen: dict[str, processes.ServerSpec] = {}
    for contender in contenders:
        for spec in contender.servers:
            seen.setdefault(spec.name, spec)
    return list(seen.values())


async def _check_agreement(contenders: Sequence[Contender]) -> dict[str, list[tuple[str, float]]]:
    """Every contender must give the same best label, with the same probability, for the
    same inputs: same model, same preprocessing. Also warms each one up."""
    answers: dict[str, list[tuple[str, float]]] = {}
    for contender in contenders:
        async with httpx.AsyncClient(base_url=contender.base_url, timeout=60) as client:
            labels = []
            for spec in contender.requests[:4]:
                response = await client.request(
                    spec.method, spec.path, content=spec.content, headers=spec.headers
                )
                if response.status_code != 200:
                    raise RuntimeError(
                        f"{contender.name} answered {response.status_code}: {response.text[:500]}"
                    )
                labels.append(contender.top_label(response))
            answers[contender.name] = labels
    by_name = {contender.name: contender for contender in contenders}
    groups: dict[str, list[str]] = {}
    for contender in contenders:
        groups.setdefault(contender.agreement_group, []).append(contender.name)
    for names in groups.values():
        reference = answers[names[0]]
        for name in names[1:]:
            labels = answers[name]
            tolerance = max(by_name[name].score_tolerance, by_name[names[0]].score_tolerance)
            same = all(
                label == ref_label and abs(score - ref_score) <= tolerance
                for (label, score), (ref_label, ref_score) in zip(labels, reference, strict=True)
            )
            if not same:
                raise RuntimeError(f"{name} disagrees with {names[0]}: {labels} vs {reference}")
        print(f"{', '.join(names)} agree on every answer: {reference}", flush=True)
    return answers


def _idle_cpu(trees: Mapping[str, ProcessTree], seconds: float) -> dict[str, float]:
    """CPU each contender burns while nobody calls it (it steals from the others' cells)."""
    before = {name: tree.cpu_seconds() for name, tree in trees.items()}
    time.sleep(seconds)
    return {
        name: round((tree.cpu_seconds() - before[name]) / seconds, 3)
        for name, tree in trees.items()
    }


async def _drive(
    suite: Suite, options: RunOptions, trees: Mapping[str, ProcessTree]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    contenders = {c.name: c for c in suite.contenders}
    levels = {c.name: c.levels for c in suite.contenders if c.levels is not None}
    plan = interleaved(list(contenders), options.concurrencies, options.repetitions, levels)
    cells: list[dict[str, Any]] = []
    limits: list[dict[str, Any]] = []
    repetition = -1
    for index, cell in enumerate(plan):
        if cell.repetition != repetition:
            repetition = cell.repetition
            if suite.limit is not None:
                # The limit runs while the servers idle, once per repetition.
                limit = await asyncio.to_thread(suite.limit)
                limits.append({"repetition": repetition, **limit, "loadavg": os.getloadavg()})
                print(f"[rep {repetition}] limit: {limit['best']:.1f} {limit['unit']}", flush=True)
        contender = contenders[cell.contender]
        # Only the measured contender runs; the others stay SIGSTOPped (LitServe's workers,
        # for one, poll their queues and burn CPU while idle).
        trees[contender.name].resume()
        await asyncio.sleep(RESUME_SETTLE_S)
        try:
            measurement = await _measure(
                contender, cell.concurrency, options, trees[contender.name]
            )
        finally:
            trees[contender.name].suspend()
        metrics = stats.cell_metrics(measurement)
        cells.append(
            {
                "repetition": cell.repetition,
                "concurrency": cell.concurrency,
                "contender": cell.contender,
                "order": index,
                **metrics,
                "error_kinds": measurement.error_kinds,
                "loadavg": os.getloadavg(),
            }
        )
        streaming = (
            f"ttft p50 {metrics['ttft_p50_ms']:7.1f} p99 {metrics['ttft_p99_ms']:7.1f} ms  "
            f"{metrics['output_tokens_per_s']:6.1f} tok/s  "
            if contender.streaming
            else ""
        )
        print(
            f"[rep {cell.repetition}] c={cell.concurrency:<3} {cell.contender:<16} {streaming}"
            f"{metrics['throughput_rps']:7.1f} req/s  p50 {metrics['p50_ms']:7.1f} ms  "
            f"p99 {metrics['p99_ms']:7.1f} ms  errors {metrics['errors']}  "
            f"cpu/req {metrics['cpu_s_per_request']:.3f} s  foreign {metrics['foreign_cores']:.2f}",
            flush=True,
        )
    return cells, limits


async def _measure(
    contender: Contender, concurrency: int, options: RunOptions, tree: ProcessTree
) -> stats.CellMeasurement:
    window: dict[str, float] = {}
    usage: dict[str, float] = {"peak_rss": 0.0}

    def on_window(start: float, end: float) -> None:
        window.update(start=start, end=end)

    async def sample() -> None:
        while "start" not in window:
            await asyncio.sleep(0.01)
        # Bounded: the window has a fixed end.
        while time.perf_counter() < window["start"]:
            usage["peak_rss"] = max(usage["peak_rss"], tree.rss_bytes())
            await asyncio.sleep(min(0.25, max(0.0, window["start"] - time.perf_counter())))
        first = (tree.cpu_seconds(), processes.own_cpu_seconds(), processes.machine_busy_seconds())
        began = time.perf_counter()
        while time.perf_counter() < window["end"]:
            usage["peak_rss"] = max(usage["peak_rss"], tree.rss_bytes())
            await asyncio.sleep(min(0.25, max(0.0, window["end"] - time.perf_counter())))
        last = (tree.cpu_seconds(), processes.own_cpu_seconds(), processes.machine_busy_seconds())
        elapsed = time.perf_counter() - began
        usage["cpu"] = last[0] - first[0]
        usage["client_cpu"] = last[1] - first[1]
        usage["busy"] = (last[2] - first[2]) / elapsed if elapsed > 0 else math.nan

    sampler = asyncio.create_task(sample())
    try:
        result = await closed_loop(
            contender.base_url,
            contender.requests,
            concurrency=concurrency,
            warmup_s=options.warmup_s,
            duration_s=options.duration_s,
            timeout_s=options.request_timeout_s,
            on_window=on_window,
            exchange=contender.exchange,
            ramp_s=options.ramp_s,
        )
    finally:
        if not sampler.done():
            await asyncio.wait_for(sampler, timeout=options.duration_s + options.warmup_s + 5)
    return stats.CellMeasurement(
        window_s=result.window_s,
        latencies_s=result.latencies_s,
        errors=result.errors,
        error_kinds=result.error_kinds,
        cpu_s=usage.get("cpu", math.nan),
        peak_rss_bytes=int(usage["peak_rss"]),
        client_cpu_s=usage.get("client_cpu", math.nan),
        machine_busy_cores=usage.get("busy", math.nan),
        streams=_streams(result.successes) if contender.streaming else None,
        window_start=result.window_start,
    )


def _streams(records: Sequence[Record]) -> list[stats.Stream]:
    return [
        stats.Stream(
            sent=r.sent,
            first_token=float(r.extra["first_token"]),
            finished=r.finished,
            output_tokens=int(r.extra["output_tokens"]),
        )
        for r in records
    ]
