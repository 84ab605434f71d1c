"""The limit: the ensemble's members fanned out in process, no HTTP, no batching and no
aggregation, at the same concurrency as the load generator's clients.

Prints one JSON object. The members are loaded exactly as the service loads them (its
members file, its loaders; see common.py). Each of `concurrency` client threads sends
single-input requests one after another, and each request calls every member at once, on a
pool with one thread per member per client, and ends when the last member answers: the
service's fan-out with nothing around it. As in the load generator, the first `--warmup`
seconds are not counted and a request counts when it finishes inside the window. The
harness runs it in a separate process with the same thread settings as every contender.

python -m benchmarks.ensemble.limit --members DIR/members.yaml --inputs DIR/test.npz
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.ensemble.common import load_members
from benchmarks.stats import percentile

# Bounds every client loop by count as well as by time, as the load generator does.
MAX_REQUESTS_PER_CLIENT = 1_000_000


def fan_out(
    models: Sequence[Any],
    rows: Sequence[np.ndarray],
    concurrency: int,
    warmup_s: float,
    seconds: float,
) -> dict[str, float]:
    """Requests/s and latency percentiles of `concurrency` closed-loop clients, each request
    one row sent to every model at once; client i starts at row i."""
    pool = ThreadPoolExecutor(max_workers=len(models) * concurrency, thread_name_prefix="member")
    latencies: list[float] = []
    started = time.perf_counter()
    window_start = started + warmup_s
    window_end = window_start + seconds

    def client(index: int) -> None:
        for n in range(MAX_REQUESTS_PER_CLIENT):
            if time.perf_counter() >= window_end:
                return
            row = rows[(index + n * concurrency) % len(rows)]
            sent = time.perf_counter()
            calls = [pool.submit(model.predict, row) for model in models]
            for call in calls:
                call.result()
            finished = time.perf_counter()
            if window_start <= finished <= window_end:
                latencies.append(finished - sent)  # list.append holds the GIL: safe

    clients = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for thread in clients:
        thread.start()
    for thread in clients:
        thread.join(timeout=warmup_s + seconds + 60)
    pool.shutdown(wait=True)
    return {
        "throughput_rps": round(len(latencies) / seconds, 2),
        "p50_ms": round(percentile(latencies, 50) * 1000, 4),
        "p95_ms": round(percentile(latencies, 95) * 1000, 4),
        "p99_ms": round(percentile(latencies, 99) * 1000, 4),
        "completed": len(latencies),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--members", type=Path, required=True, help="the members file")
    parser.add_argument("--inputs", type=Path, required=True, help=".npz with `inputs`")
    parser.add_argument("--rows", type=int, default=8, help="requests rotate over these rows")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--concurrency", default="1,32", help="levels, comma-separated")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    spec, models = load_members(args.members, args.threads, args.device)
    with np.load(args.inputs) as data:
        inputs = data["inputs"][: args.rows].astype(np.float32)
    rows = [np.ascontiguousarray(inputs[i : i + 1]) for i in range(len(inputs))]
    for model in models:  # the first call of each runtime sets up its graph
        model.predict(rows[0])
    levels = [int(level) for level in args.concurrency.split(",")]
    by_level = {
        str(level): fan_out(models, rows, level, args.warmup, args.seconds) for level in levels
    }
    top = by_level[str(max(levels))]
    print(
        json.dumps(
            {
                # What the harness's limit line and chart read: requests/s at the highest
                # level, every member at batch 1 (no batching).
                "best": top["throughput_rps"],
                "best_batch_size": 1,
                "by_batch_size": {"1": top["throughput_rps"]},
                "unit": "requests/s",
                "by_concurrency": by_level,
                "members": [f"{m.name} ({m.runtime})" for m in spec.members],
                "threads": args.threads,
                "seconds": args.seconds,
            }
        )
    )


if __name__ == "__main__":
    main()
