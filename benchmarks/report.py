"""Writes a run's results: JSON (everything), a Markdown table and a PNG chart."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks import stats

METRICS = (
    ("throughput_rps", "throughput", "{:.1f}"),
    ("p50_ms", "p50 ms", "{:.0f}"),
    ("p95_ms", "p95 ms", "{:.0f}"),
    ("p99_ms", "p99 ms", "{:.0f}"),
    ("errors", "errors", "{:.0f}"),
    ("cpu_s_per_request", "CPU s/req", "{:.3f}"),
    ("peak_rss_mb", "peak RSS MB", "{:.0f}"),
)


# What streaming cells add (stats.stream_metrics); a suite picks its columns among them.
STREAM_METRICS = (
    "ttft_p50_ms",
    "ttft_p95_ms",
    "ttft_p99_ms",
    "output_tokens_per_s",
    "stream_tokens_per_s",
    "streams_started",
)


def summarise(cells: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """summary[contender][concurrency][metric] = median, min, max over repetitions."""
    grouped: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
    for cell in cells:
        by_level = grouped.setdefault(cell["contender"], {})
        by_level.setdefault(str(cell["concurrency"]), []).append(cell)
    numeric = {name for name, _, _ in METRICS} | {
        "completed",
        "error_rate",
        "client_cpu_s_per_request",
        "machine_busy_cores",
        "foreign_cores",
        *STREAM_METRICS,
    }
    return {
        contender: {
            level: stats.aggregate([{k: v for k, v in c.items() if k in numeric} for c in group])
            for level, group in by_level.items()
        }
        for contender, by_level in grouped.items()
    }


def summarise_limit(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The best batch size by median over repetitions, and its throughput with min-max."""
    if not runs:
        return None
    sizes = sorted({int(size) for run in runs for size in run["by_batch_size"]})
    by_size = {
        size: stats.spread(float(run["by_batch_size"].get(str(size), math.nan)) for run in runs)
        for size in sizes
    }
    best = max(sizes, key=lambda size: by_size[size]["median"])
    return {
        "best_batch_size": best,
        "per_second": by_size[best],
        "by_batch_size": {str(size): by_size[size] for size in sizes},
        "unit": runs[0].get("unit", ""),
    }


def summarise_limits(runs: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Each runtime's limit, where a suite measures several (a run's `runtimes`)."""
    names = sorted({name for run in runs for name in run.get("runtimes", {})})
    return {
        name: summarise_limit([run["runtimes"][name] for run in runs if name in run["runtimes"]])
        for name in names
    }


def _number(cell: Mapping[str, float], fmt: str) -> str:
    if cell.get("n", 0) == 0 or math.isnan(cell["median"]):
        return "-"
    median, low, high = (fmt.format(cell[k]) for k in ("median", "min", "max"))
    return median if low == high else f"{median} ({low}-{high})"


def markdown(results: Mapping[str, Any]) -> str:
    if "tables" in results:
        return tables_markdown(results)
    summary = results["summary"]
    contenders = [c["name"] for c in results["contenders"]]
    levels = results["settings"]["concurrencies"]
    unit = results["throughput_unit"]
    lines = [
        f"# {results['kind']} on {results['device']}",
        "",
        f"Run {results['started_at']} in {results['duration_s'] / 60:.1f} min: "
        f"{results['settings']['repetitions']} repetitions of "
        f"{results['settings']['warmup_s']:g} s warm-up + {results['settings']['duration_s']:g} s "
        "measured per cell, contenders interleaved. Medians, with min-max over repetitions.",
        "",
        f"Machine: {results['machine_line']}. Load average at start "
        f"{_loads(results['machine']['loadavg_at_start'])}, at end "
        f"{_loads(results['loadavg_at_end'])}.",
        "",
    ]
    limit = results.get("limit")
    if limit:
        lines += [
            f"**Limit**: {_number(limit['per_second'], '{:.1f}')} {limit['unit']} at batch "
            f"{limit['best_batch_size']} ({results['limit_description']}).",
            "",
        ]
    limits = results.get("limits") or {}
    if limits:
        sizes = sorted({int(size) for lim in limits.values() for size in lim["by_batch_size"]})
        lines += [
            "| runtime (model alone) | " + " | ".join(f"batch {size}" for size in sizes) + " |",
            "| --- | " + " | ".join("---" for _ in sizes) + " |",
        ]
        for name, lim in limits.items():
            cells = [lim["by_batch_size"].get(str(size)) for size in sizes]
            row = [_number(cell, "{:.1f}") if cell else "-" for cell in cells]
            lines.append(f"| {name} | " + " | ".join(row) + " |")
        lines.append("")
    lines += ["## Targets", "", "| target | measured | met |", "| --- | --- | --- |"]
    for target in results["targets"]:
        met = {True: "yes", False: "**MISSED**", None: "not measured"}[target["passed"]]
        lines.append(f"| {target['text']} | {target['measured']} | {met} |")
    metrics = [METRICS[0], *[tuple(column) for column in results.get("columns", [])], *METRICS[1:]]
    header = ["concurrency", "contender", *(f"{label}" for _, label, _ in metrics)]
    header[2] = f"throughput ({unit})"
    lines += [
        "",
        "## All cells",
        "",
        "| " + " | ".join(header) + " |",
        "| " + " | ".join("---" for _ in header) + " |",
    ]
    for level in levels:
        for name in contenders:
            cell = summary.get(name, {}).get(str(level))
            if cell is None:
                continue
            values = [
                _number(cell[metric], fmt) if metric in cell else "-" for metric, _, fmt in metrics
            ]
            lines.append(f"| {level} | {name} | " + " | ".join(values) + " |")
    lines += ["", "## Contenders", ""]
    for contender in results["contenders"]:
        settings = ", ".join(f"{k}={v}" for k, v in contender["settings"].items())
        lines.append(f"- **{contender['name']}**: {contender['description']} ({settings})")
    idle = results.get("idle_cpu_cores", {})
    if idle:
        lines += [
            "",
            "Idle CPU of each contender before the cells, while not suspended (cores): "
            + ", ".join(f"{name} {value:.2f}" for name, value in idle.items())
            + ".",
        ]
    if results.get("notes"):
        lines += ["", *[f"- {note}" for note in results["notes"]]]
    return "\n".join(lines) + "\n"


def tables_markdown(results: Mapping[str, Any]) -> str:
    """A kind measured in process (Suite.measure): its targets, then its own tables."""
    lines = [
        f"# {results['kind']} on {results['device']}",
        "",
        f"Run {results['started_at']} in {results['duration_s'] / 60:.1f} min, in process "
        "(no HTTP).",
        "",
        f"Machine: {results['machine_line']}. Load average at start "
        f"{_loads(results['machine']['loadavg_at_start'])}, at end "
        f"{_loads(results['loadavg_at_end'])}.",
        "",
        "## Targets",
        "",
        "| target | measured | met |",
        "| --- | --- | --- |",
    ]
    for target in results["targets"]:
        met = {True: "yes", False: "**MISSED**", None: "not measured"}[target["passed"]]
        lines.append(f"| {target['text']} | {target['measured']} | {met} |")
    for table in results["tables"]:
        lines += [
            "",
            f"## {table['title']}",
            "",
            "| " + " | ".join(table["columns"]) + " |",
            "| " + " | ".join("---" for _ in table["columns"]) + " |",
            *("| " + " | ".join(row) + " |" for row in table["rows"]),
        ]
    if results.get("notes"):
        lines += ["", *[f"- {note}" for note in results["notes"]]]
    return "\n".join(lines) + "\n"


def _loads(values: Sequence[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def chart(results: Mapping[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figures = results["figures"]
    fig, axes = plt.subplots(1, len(figures), figsize=(6 * len(figures), 4.5), squeeze=False)
    levels = results["settings"]["concurrencies"]
    for axis, figure in zip(axes[0], figures, strict=True):
        for contender in results["contenders"]:
            name = contender["name"]
            cells = [results["summary"].get(name, {}).get(str(c), {}) for c in levels]
            xs, ys, low, high = [], [], [], []
            for level, cell in zip(levels, cells, strict=True):
                value = cell.get(figure["metric"])
                if not value or value["n"] == 0:
                    continue
                xs.append(level)
                ys.append(value["median"])
                low.append(value["median"] - value["min"])
                high.append(value["max"] - value["median"])
            axis.errorbar(xs, ys, yerr=[low, high], marker="o", capsize=3, label=name)
        limit = results.get("limit")
        limits = results.get("limits") or ({"": limit} if limit else {})
        if figure["metric"] == "throughput_rps":
            for (name, lim), style in zip(limits.items(), ("--", ":", "-."), strict=False):
                which = f"limit {name}" if name else "limit"
                axis.axhline(
                    lim["per_second"]["median"],
                    color="black",
                    linestyle=style,
                    label=f"{which} (batch {lim['best_batch_size']})",
                )
        axis.set_xscale("log", base=2)
        axis.set_xticks(levels, [str(level) for level in levels])
        if figure["log_y"]:
            axis.set_yscale("log")
        axis.set_xlabel("concurrent clients")
        axis.set_ylabel(figure["unit"])
        axis.set_title(figure["title"])
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    fig.suptitle(
        f"{results['kind']} on {results['device']}: {results['machine']['cpu_model']}, "
        f"{results['machine']['usable_cpus']} CPUs",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write(results: Mapping[str, Any], directory: Path, *, with_chart: bool = True) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = [directory / "results.json", directory / "results.md"]
    written[0].write_text(json.dumps(finite(results), indent=1, allow_nan=False) + "\n")
    written[1].write_text(markdown(results))
    if with_chart:
        chart(results, directory / "chart.png")
        written.append(directory / "chart.png")
    return written


def finite(value: Any) -> Any:
    """The same structure with NaN as null, so the file is strict JSON."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, Mapping):
        return {str(k): finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value
