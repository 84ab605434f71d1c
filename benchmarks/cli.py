"""`python -m benchmarks <kind> [--device cpu|gpu]`: what `nox -s bench` runs."""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import machine, report
from benchmarks.runner import RunOptions, run
from tests import kinds

RESULTS = Path(__file__).parent / "results"
PROJECTS = Path(__file__).parents[1] / "projects"


def _levels(text: str) -> list[int]:
    levels = [int(part) for part in text.split(",") if part.strip()]
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("concurrency levels are positive integers")
    return levels


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("kind", help="a project kind (templates/<kind>/kind.yml)")
    parser.add_argument("--device", choices=["cpu", "gpu"], default="cpu")
    parser.add_argument(
        "--concurrency", type=_levels, help="levels (default: the kind's; 1,4,16,32,64)"
    )
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument(
        "--warmup", type=float, help="seconds not counted per cell (default: the kind's; 1.5)"
    )
    parser.add_argument(
        "--duration", type=float, help="seconds measured per cell (default: the kind's; 5)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads, every contender")
    parser.add_argument("--contenders", help="comma-separated subset (default: all)")
    parser.add_argument(
        "--out", type=Path, help="results folder (default: benchmarks/results/<kind>/<device>)"
    )
    return parser.parse_args(argv)


def suite_of(kind: str) -> str:
    """The benchmark suite a kind's manifest names (its `benchmark`)."""
    suite = kinds.kind(kind).get("benchmark")
    if not suite:
        raise SystemExit(f"{kind} names no benchmark suite in its kind.yml")
    return str(suite)


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.device == "gpu" and not cuda_available():
        print("skipped: no CUDA device (torch.cuda.is_available() is false); nothing was run")
        return 0
    suite = suite_of(args.kind)
    module = importlib.import_module(f"benchmarks.{suite}")
    out = args.out or RESULTS / args.kind / args.device
    started = time.monotonic()
    started_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    description = machine.describe(
        machine.PACKAGES
        + machine.requirement_names(Path(__file__).parent / suite / "requirements.txt")
        + machine.dependency_names(PROJECTS / args.kind / "pyproject.toml")
    )
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        workdir = Path(tmp)
        suite_options: dict[str, Any] = {"threads": args.threads}
        if args.contenders:
            suite_options["contenders"] = args.contenders.split(",")
        print(f"preparing {args.kind} in {workdir}", flush=True)
        suite = module.build(workdir, args.device, suite_options)
        warmup = suite.warmup_s if args.warmup is None else args.warmup
        options = RunOptions(
            concurrencies=args.concurrency or list(suite.concurrencies),
            repetitions=args.repetitions,
            warmup_s=warmup,
            duration_s=suite.duration_s if args.duration is None else args.duration,
            ramp_s=min(suite.ramp_s, 0.8 * warmup),
        )
        if suite.measure is not None:
            measured = {"cells": [], "limit_runs": [], **suite.measure()}
            run_settings: dict[str, Any] = {}
        else:
            log_dir = workdir / "logs"
            log_dir.mkdir()
            measured = run(suite, options, log_dir)
            run_settings = dataclasses.asdict(options)
    results: dict[str, Any] = {
        "kind": suite.kind,
        "device": args.device,
        "started_at": started_at,
        "duration_s": round(time.monotonic() - started, 1),
        "machine": description,
        "machine_line": machine.summary_line(description),
        "loadavg_at_end": [round(v, 2) for v in os.getloadavg()],
        "settings": {**run_settings, **suite.settings},
        "throughput_unit": suite.throughput_unit,
        "contenders": [
            {"name": c.name, "description": c.description, "settings": dict(c.settings)}
            for c in suite.contenders
        ],
        "figures": [dataclasses.asdict(f) for f in suite.figures],
        "columns": [list(column) for column in suite.columns],
        "levels": {c.name: list(c.levels) for c in suite.contenders if c.levels is not None},
        "limit_description": suite.limit_description,
        "notes": list(suite.notes),
        **measured,
    }
    results["summary"] = report.summarise(results["cells"])
    results["limit"] = report.summarise_limit(results["limit_runs"])
    results["limits"] = report.summarise_limits(results["limit_runs"])
    results["targets"] = [
        {"text": t.text, **dataclasses.asdict(t.check(results))} for t in suite.targets
    ]
    for path in report.write(results, out, with_chart=bool(suite.figures)):
        print(f"wrote {path}")
    print(report.markdown(results))
    return 0
