"""Profiles one contender under load: where its threads spend their time, and its batches.

python -m benchmarks.profile <kind> --contender ours --concurrency 32

Starts only that contender, drives it with the closed-loop generator, samples every thread
of its first server with py-spy (which needs ptrace: root, or ptrace_scope 0) and writes
benchmarks/results/<kind>/<device>/profile-<contender>-c<N>.md: per thread, the share of
samples spent busy and the functions it was busy in; plus the service's own batch-size
histogram when it exposes /metrics. `--env KEY=VALUE` tries a setting the way a user would.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import importlib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
# Leaf frames where a thread waits rather than works.
WAITING = re.compile(
    r"Condition\.wait|Runner\.run|_worker \(concurrent/futures/thread|select|epoll|"
    r"queue\.py|threading\.py:3[0-9]{2}|WorkerThread\.run"
)


def summarise(raw: str, top: int = 8) -> list[str]:
    """py-spy's raw (collapsed) stacks -> per thread: busy share and busiest leaf frames."""
    per_thread: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    totals: collections.Counter[str] = collections.Counter()
    ids: dict[str, set[str]] = collections.defaultdict(set)
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = re.sub(r"thread \((\d+)\): ", "", frames[0]) or "thread"
        ids[thread].add(frames[0])
        totals[thread] += int(count)
        per_thread[thread][frames[-1]] += int(count)
    lines = []
    for thread, total in totals.most_common():
        busy = {leaf: n for leaf, n in per_thread[thread].items() if not WAITING.search(leaf)}
        share = sum(busy.values()) / total if total else 0.0
        count = len(ids[thread])
        lines.append(
            f"- **{thread}** ({count} thread{'s' if count > 1 else ''}): busy in {share:.0%} "
            f"of {total} samples (busy/total summed over its threads)"
        )
        for leaf, n in collections.Counter(busy).most_common(top):
            lines.append(f"    - {n / total:.0%} `{leaf}`")
    return lines


def batch_histogram(metrics_text: str) -> list[str]:
    """The service's inference_batch_size histogram, as mean batch and bucket counts."""
    buckets, total, count = [], 0.0, 0.0
    for line in metrics_text.splitlines():
        if line.startswith("inference_batch_size_bucket"):
            le = re.search(r'le="([^"]+)"', line)
            if le:
                buckets.append((le.group(1), float(line.rsplit(" ", 1)[1])))
        elif line.startswith("inference_batch_size_sum"):
            total = float(line.rsplit(" ", 1)[1])
        elif line.startswith("inference_batch_size_count"):
            count = float(line.rsplit(" ", 1)[1])
    if not count:
        return []
    cumulative = ", ".join(f"<={le}: {int(n)}" for le, n in buckets)
    return [
        f"- batches: {int(count)}, mean size {total / count:.1f}",
        f"- cumulative: {cumulative}",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    parser.add_argument("kind")
    parser.add_argument("--contender", default="ours")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for its servers")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    import httpx

    from benchmarks import processes
    from benchmarks.cli import suite_of
    from benchmarks.loadgen import closed_loop

    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    module = importlib.import_module(f"benchmarks.{suite_of(args.kind)}")
    overrides = dict(item.split("=", 1) for item in args.env)
    suffix = "".join(f"-{k.lower()}{v}" for k, v in overrides.items())
    out = (
        args.out
        or RESULTS / args.kind / "cpu" / f"profile-{args.contender}-c{args.concurrency}{suffix}.md"
    )
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        workdir = Path(tmp)
        suite = module.build(
            workdir, "cpu", {"threads": args.threads, "contenders": [args.contender]}
        )
        [contender] = suite.contenders
        for spec in contender.servers:
            spec.env = {**spec.env, **overrides}
        (workdir / "logs").mkdir()
        raw = workdir / "profile.raw"
        with processes.running(contender.servers, workdir / "logs") as servers:
            target = servers[-1]  # the contender's own front process
            drive = closed_loop(
                contender.base_url,
                contender.requests,
                concurrency=args.concurrency,
                warmup_s=3.0,
                duration_s=args.seconds + 2,
                exchange=contender.exchange,
                ramp_s=min(suite.ramp_s, 2.0),
            )
            command = [py_spy, "record", "--pid", str(target.pid), "--threads", "--idle"]
            command += ["--nonblocking", "--rate", "50", "--format", "raw", "-o", str(raw)]
            command += ["--duration", str(int(args.seconds))]

            async def both() -> tuple[float, str]:
                task = asyncio.create_task(drive)
                await asyncio.sleep(3.0)
                spy = await asyncio.create_subprocess_exec(
                    *command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
                )
                _, err = await asyncio.wait_for(spy.communicate(), args.seconds + 60)
                result = await task
                return len(result.latencies_s) / result.window_s, err.decode()[-400:]

            rate, spy_log = asyncio.run(both())
            try:
                metrics = httpx.get(f"{contender.base_url}/metrics", timeout=10).text
            except httpx.HTTPError:
                metrics = ""
        lines = [
            f"# Profile: {args.contender} at concurrency {args.concurrency}",
            "",
            f"{rate:.1f} requests/s while sampled (py-spy itself takes CPU); settings "
            f"{overrides or 'as in the benchmark'}; torch threads {args.threads}.",
            "",
            "## Batches",
            "",
            *(batch_histogram(metrics) or ["- no inference_batch_size metric"]),
            "",
            "## Threads (py-spy, all samples incl. idle; busy = not waiting)",
            "",
            *(summarise(raw.read_text()) if raw.exists() else [f"py-spy failed: {spy_log}"]),
        ]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
