"""The benchmark harness's pure parts: statistics, interleaving, windows, reports.

No server starts here; matplotlib and the suites' peers are not needed.
"""

from __future__ import annotations

import json
import math

import pytest

from benchmarks import plan, report, stats
from benchmarks.profile import batch_histogram, summarise


def test_percentile_interpolates_like_numpy() -> None:
    values = [10.0, 20.0, 30.0, 40.0]
    assert stats.percentile(values, 0) == 10.0
    assert stats.percentile(values, 50) == pytest.approx(25.0)
    assert stats.percentile(values, 99) == pytest.approx(39.7)
    assert stats.percentile(values, 100) == 40.0
    assert math.isnan(stats.percentile([], 50))


def test_percentile_rejects_out_of_range_q() -> None:
    with pytest.raises(ValueError, match="outside"):
        stats.percentile([1.0], 101)


def test_spread_is_median_with_min_max_and_skips_nan() -> None:
    assert stats.spread([3.0, 1.0, math.nan, 2.0]) == {
        "median": 2.0,
        "min": 1.0,
        "max": 3.0,
        "n": 3,
    }
    assert stats.spread([math.nan])["n"] == 0


def test_cell_metrics_count_only_successes_in_throughput() -> None:
    cell = stats.CellMeasurement(
        window_s=2.0,
        latencies_s=[0.1, 0.2, 0.3, 0.4],
        errors=1,
        cpu_s=0.8,
        peak_rss_bytes=200 * 2**20,
        client_cpu_s=0.2,
        machine_busy_cores=1.5,
    )
    metrics = stats.cell_metrics(cell)
    assert metrics["throughput_rps"] == 2.0
    assert metrics["p50_ms"] == pytest.approx(250.0)
    assert metrics["error_rate"] == pytest.approx(0.2)
    assert metrics["cpu_s_per_request"] == pytest.approx(0.2)
    assert metrics["peak_rss_mb"] == pytest.approx(200.0)
    assert metrics["foreign_cores"] == pytest.approx(1.0)


def test_cell_with_no_success_has_no_latency_or_cost() -> None:
    metrics = stats.cell_metrics(stats.CellMeasurement(window_s=1.0, errors=3))
    assert metrics["throughput_rps"] == 0.0
    assert math.isnan(metrics["p99_ms"])
    assert math.isnan(metrics["cpu_s_per_request"])


def test_interleaving_runs_every_contender_per_level_and_rotates_the_order() -> None:
    cells = plan.interleaved(["a", "b", "c"], [1, 32], repetitions=3)
    assert len(cells) == 3 * 2 * 3
    first = [cell.contender for cell in cells[:6]]
    assert first == ["a", "b", "c", "a", "b", "c"]
    leaders = [cells[i].contender for i in (0, 6, 12)]
    assert leaders == ["a", "b", "c"]  # no contender always goes first
    for repetition in range(3):
        for level in (1, 32):
            ran = [
                c.contender for c in cells if c.repetition == repetition and c.concurrency == level
            ]
            assert sorted(ran) == ["a", "b", "c"]


def test_interleaving_nothing_gives_no_cells() -> None:
    assert plan.interleaved([], [1], 3) == []
    assert plan.interleaved(["a"], [1], 0) == []


def test_only_requests_finishing_inside_the_window_count() -> None:
    loadgen = pytest.importorskip("benchmarks.loadgen")
    records = [
        (0.5, 0.5, None),  # warm-up: dropped
        (1.5, 0.2, None),
        (2.0, 0.3, "http_503"),
        (2.9, 0.1, None),
        (3.5, 0.4, None),  # after the window: dropped
    ]
    result = loadgen.summarise(records, window_start=1.0, window_end=3.0)
    assert result.latencies_s == [0.2, 0.1]
    assert result.errors == 1
    assert result.error_kinds == {"http_503": 1}
    assert result.window_s == 2.0


def test_load_generator_refuses_anything_but_loopback() -> None:
    loadgen = pytest.importorskip("benchmarks.loadgen")
    loadgen.check_local("http://127.0.0.1:8000")
    with pytest.raises(ValueError, match=r"127\.0\.0\.1"):
        loadgen.check_local("http://example.com:8000")


def _cell(contender: str, level: int, repetition: int, rps: float) -> dict:
    return {
        "contender": contender,
        "concurrency": level,
        "repetition": repetition,
        "throughput_rps": rps,
        "p50_ms": 10.0 * level,
        "p95_ms": 20.0 * level,
        "p99_ms": 30.0 * level,
        "errors": 0,
        "cpu_s_per_request": 0.05,
        "peak_rss_mb": 300.0,
        "error_kinds": {},
    }


def _results() -> dict:
    cells = [
        _cell(name, level, rep, rps + rep)
        for rep in range(3)
        for level in (1, 32)
        for name, rps in (("ours", 30.0), ("peer", 20.0))
    ]
    limit_runs = [
        {"by_batch_size": {"1": 28.0 + r, "8": 35.0 + r}, "best": 35.0 + r, "unit": "images/s"}
        for r in range(3)
    ]
    results = {
        "kind": "a-kind",
        "device": "cpu",
        "started_at": "2026-01-01 00:00 UTC",
        "duration_s": 600.0,
        "machine": {"loadavg_at_start": [1.0, 1.0, 1.0], "cpu_model": "cpu", "usable_cpus": 2},
        "machine_line": "a test machine",
        "loadavg_at_end": [2.0, 1.5, 1.0],
        "settings": {"concurrencies": [1, 32], "repetitions": 3, "warmup_s": 2, "duration_s": 5},
        "throughput_unit": "images/s",
        "contenders": [
            {"name": "ours", "description": "the service", "settings": {"threads": 1}},
            {"name": "peer", "description": "a peer", "settings": {}},
        ],
        "figures": [{"metric": "throughput_rps", "title": "t", "unit": "u", "log_y": False}],
        "limit_description": "the model alone",
        "notes": ["a note"],
        "idle_cpu_cores": {"ours": 0.0, "peer": 0.25},
        "cells": cells,
        "limit_runs": limit_runs,
        "targets": [
            {"text": "ours beats peer", "passed": True, "measured": "1.5x"},
            {"text": "ours is instant", "passed": False, "measured": "no"},
        ],
    }
    results["summary"] = report.summarise(cells)
    results["limit"] = report.summarise_limit(limit_runs)
    return results


def test_summary_gives_median_and_min_max_per_contender_and_level() -> None:
    summary = _results()["summary"]
    assert summary["ours"]["32"]["throughput_rps"] == {
        "median": 31.0,
        "min": 30.0,
        "max": 32.0,
        "n": 3,
    }
    assert summary["peer"]["1"]["p99_ms"]["median"] == 30.0


def test_limit_is_the_best_batch_size_by_median() -> None:
    limit = _results()["limit"]
    assert limit["best_batch_size"] == 8
    assert limit["per_second"]["median"] == 36.0
    assert limit["by_batch_size"]["1"]["min"] == 28.0


def test_markdown_table_has_every_cell_and_flags_missed_targets() -> None:
    text = report.markdown(_results())
    assert "| 32 | ours | 31.0 (30.0-32.0) |" in text
    assert "| 1 | peer | 21.0 (20.0-22.0) |" in text
    assert "| ours is instant | no | **MISSED** |" in text
    assert "| ours beats peer | 1.5x | yes |" in text
    assert "36.0 (35.0-37.0) images/s at batch 8" in text
    assert "a test machine" in text


def test_results_json_is_strict_json_with_nan_as_null(tmp_path) -> None:
    results = _results()
    results["cells"][0]["p99_ms"] = math.nan
    written = report.write(results, tmp_path, with_chart=False)
    assert [p.name for p in written] == ["results.json", "results.md"]
    loaded = json.loads((tmp_path / "results.json").read_text())
    assert loaded["cells"][0]["p99_ms"] is None
    assert loaded["limit"]["best_batch_size"] == 8


def test_profile_summary_separates_busy_from_waiting_threads() -> None:
    raw = "\n".join(
        [
            "thread (1): inference_0;run;Module._call_impl (torch/nn/modules/module.py:1) 98",
            "thread (1): inference_0;_worker (concurrent/futures/thread.py:81) 2",
            "thread (2): MainThread;Runner.run (asyncio/runners.py:118) 90",
            "thread (2): MainThread;JSONDecoder.decode (json/decoder.py:337) 10",
        ]
    )
    lines = summarise(raw)
    assert lines[0].startswith("- **inference_0** (1 thread): busy in 98%")
    assert any("MainThread" in line and "busy in 10%" in line for line in lines)


def test_batch_histogram_reads_the_service_metric() -> None:
    text = "\n".join(
        [
            'inference_batch_size_bucket{le="8.0"} 2.0',
            'inference_batch_size_bucket{le="+Inf"} 4.0',
            "inference_batch_size_sum 40.0",
            "inference_batch_size_count 4.0",
        ]
    )
    assert batch_histogram(text)[0] == "- batches: 4, mean size 10.0"
    assert batch_histogram("") == []
