"""Batch video: the project's local engine against its own limits and a plain loop, on
videos made here (digits drawn on frames; nothing is downloaded), measured in process.

- decode alone: the project's VideoReader over every video (sampled, scaled to the model's
  8x8 as the pipeline does), in as many worker processes as the engine has;
- inference alone: the classifier (ONNX Runtime, one thread) on as many frames, at the
  engine's batch size, in as many processes;
- the local engine end to end: a job over the same videos through `run_job` on
  `LocalEngine` (its workers started and the model loaded before the clock starts), rows
  and manifests committed as in production;
- a plain loop: one process decoding every frame with PyAV's defaults, RGB, numpy
  scaling, one frame per model call (what a first script does);
- sampling one frame a second from a long-GOP video (a keyframe every 10 s): frames decoded
  per frame analysed, exact times against keyframe-aligned;
- memory: one video ten times as long as the test videos through the pipeline, its RSS
  sampled every 50 ms.

- the Ray engine on one node, a local Ray, with 1 and 2 actors of half a core each.

Ray Data's `read_videos` is not measured: it needs decord, which has no wheel for this
Python.
"""

from __future__ import annotations

import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks.processes import render_project
from benchmarks.suite import Outcome, Suite, Target

KIND = "batch-video"
VIDEOS = 4
VIDEO_S = 150.0  # each
TEST_VIDEO_S = 16.0  # the length of the project's test videos
INTERVAL_S = 0.04  # every frame at 25 frames/s: decode and inference both at full load
ROUNDS = 3
# The targets.
OF_LIMIT = 0.80
DECODED_PER_ANALYSED = 1.5
RSS_GROWTH_MB = 50.0


def build(workdir: Path, device: str, options: Mapping[str, Any]) -> Suite:
    if device != "cpu":
        raise SystemExit("the batch-video suite runs on CPU only for now")
    render = render_project(KIND, workdir / "render")
    sys.path.insert(0, str(render / "src"))
    # Ray's workers are processes of their own: they find the package the same way.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, (str(render / "src"), os.environ.get("PYTHONPATH")))
    )
    workers = int(options.get("workers", os.cpu_count() or 1))
    return Suite(
        kind=KIND,
        contenders=[],
        targets=[
            Target(
                f"local engine end to end >= {OF_LIMIT:.0%} of the lower of decode alone and "
                "inference alone",
                _limit_target,
            ),
            Target(
                f"1 frame/s from long-GOP video: frames decoded per frame analysed <= "
                f"{DECODED_PER_ANALYSED:g} (keyframe-aligned)",
                _gop_target,
            ),
            Target(
                f"RSS grows by < {RSS_GROWTH_MB:g} MB over a video ten times the test videos' "
                "length",
                _memory_target,
            ),
        ],
        figures=[],
        throughput_unit="",
        measure=lambda: measure(workdir, workers),
        settings={
            "videos": VIDEOS,
            "video_s": VIDEO_S,
            "interval_s": INTERVAL_S,
            "workers": workers,
            "runtime": "onnxruntime",
        },
    )


def measure(workdir: Path, workers: int) -> dict[str, Any]:
    from batch_video.demo_videos import Script, demo_scripts, write_folder, write_video
    from batch_video.engines import LocalEngine
    from batch_video.jobs import Engine, Job, JobSpec, run_job
    from batch_video.pipeline import PipelineOptions
    from batch_video.training import train_demo_model
    from batch_video.video import Sampling

    from benchmarks.batch_video import stages

    print("training the demo classifier and writing the videos", flush=True)
    model = train_demo_model(workdir / "model").output_dir
    videos = write_folder(workdir / "videos", demo_scripts(VIDEOS, VIDEO_S))
    long_gop = write_video(
        workdir / "long-gop.mp4", Script(tuple(range(10)) * 6, 2.0), gop=250
    )  # 120 s, a keyframe every 10 s
    # Ten times a test video: 160 s, a digit every 2 s.
    long_video = write_video(
        workdir / "ten-times.mp4", Script(tuple(range(10)) * 8, TEST_VIDEO_S * 10 / 80)
    )
    paths = [str(p) for p in videos]
    context = multiprocessing.get_context("spawn")

    def parallel(
        function: Callable[..., dict[str, float]], calls: list[tuple[Any, ...]]
    ) -> dict[str, float]:
        with ProcessPoolExecutor(workers, mp_context=context) as pool:
            # Every worker started and its imports done before the clock starts.
            for warm in [pool.submit(stages.warm) for _ in range(workers)]:
                warm.result()
            started = time.perf_counter()
            results = [f.result() for f in [pool.submit(function, *call) for call in calls]]
            seconds = time.perf_counter() - started
        frames = sum(r["frames"] for r in results)
        return {"frames": frames, "seconds": seconds, "frames_per_s": frames / seconds}

    def engine_run(engine: Engine, name: str, interval_s: float) -> dict[str, float]:
        spec = JobSpec(
            name,
            tuple(paths),
            Sampling(interval_s=interval_s),
            PipelineOptions(),
            str(model),
            "onnxruntime",
            "bench",
        )
        job = Job.create(workdir / "jobs" / name, spec)
        started = time.perf_counter()
        report = run_job(job, engine)
        seconds = time.perf_counter() - started
        frames = sum(r.frames_analysed for r in report.records)
        return {"frames": frames, "seconds": seconds, "frames_per_s": frames / seconds}

    # The three side by side, round after round: on a small shared machine one run of each
    # is at the mercy of whatever else ran meanwhile.
    runs: dict[str, list[dict[str, float]]] = {"decode": [], "infer": [], "engine": []}
    engine = LocalEngine(workers)
    try:
        engine_run(engine, "warm", 5.0)  # the workers spawned, the model loaded in each
        for round_ in range(ROUNDS):
            print(f"round {round_ + 1} of {ROUNDS}: decode alone, inference alone, the engine")
            runs["decode"].append(parallel(stages.decode_only, [(p, INTERVAL_S) for p in paths]))
            per_worker = runs["decode"][-1]["frames"] // workers
            runs["infer"].append(
                parallel(stages.infer_only, [(str(model), "onnxruntime", per_worker, 32)] * workers)
            )
            runs["engine"].append(engine_run(engine, f"round-{round_}", INTERVAL_S))
            print(f"  {[round(r[-1]['frames_per_s']) for r in runs.values()]}", flush=True)
    finally:
        engine.close()
    decode, infer, local = (_median(runs[name]) for name in ("decode", "infer", "engine"))

    import ray
    from batch_video.engines import RayEngine

    on_ray: dict[str, dict[str, Any]] = {}
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    for actors in (1, 2):
        print(f"the Ray engine, {actors} actor(s) of half a core", flush=True)
        ray_engine = RayEngine(actors, num_cpus=0.5)
        try:
            engine_run(ray_engine, f"ray-warm-{actors}", 5.0)
            rounds = [
                engine_run(ray_engine, f"ray-{actors}-{n}", INTERVAL_S) for n in range(ROUNDS)
            ]
        finally:
            ray_engine.close()
        on_ray[str(actors)] = _median(rounds)
        print(f"  {on_ray[str(actors)]}", flush=True)
    ray.shutdown()

    print("a plain loop (one process)", flush=True)
    plain = parallel(stages.plain_loop, [(p, str(model), INTERVAL_S) for p in paths[:1]])
    print(f"  {plain}", flush=True)

    print("sampling 1 frame/s from long-GOP video", flush=True)
    gop = {}
    for align in ("exact", "keyframe"):
        result = stages.decode_only(str(long_gop), 1.0, align)
        gop[align] = {**result, "decoded_per_analysed": result["decoded"] / result["frames"]}
        print(f"  {align}: {gop[align]}", flush=True)

    print("memory over a video ten times the test videos' length", flush=True)
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        memory = pool.submit(
            stages.rss_over_a_long_video, str(long_video), str(model), INTERVAL_S
        ).result()
    print(f"  {memory}", flush=True)
    measured = {
        "workers": workers,
        "decode_alone": decode,
        "inference_alone": infer,
        "local_engine": local,
        "ray_engine": on_ray,
        "plain_loop": plain,
        "long_gop": gop,
        "memory": memory,
    }
    return {**measured, "tables": tables(measured)}


def _median(runs: list[dict[str, float]]) -> dict[str, Any]:
    rates = sorted(r["frames_per_s"] for r in runs)
    return {
        "frames": runs[0]["frames"],
        "frames_per_s": statistics.median(rates),
        "min": rates[0],
        "max": rates[-1],
        "rounds": len(rates),
    }


def tables(measured: Mapping[str, Any]) -> list[dict[str, Any]]:
    workers = measured["workers"]
    limit = min(
        measured["decode_alone"]["frames_per_s"], measured["inference_alone"]["frames_per_s"]
    )

    def rate(cell: Mapping[str, Any]) -> str:
        spread = f" ({cell['min']:.0f}-{cell['max']:.0f})" if "min" in cell else ""
        return f"{cell['frames_per_s']:.0f}{spread}"

    rows = [
        ["decode alone", f"{workers} processes", rate(measured["decode_alone"]), "-"],
        [
            "inference alone",
            f"{workers} processes, batch 32",
            rate(measured["inference_alone"]),
            "-",
        ],
        [
            "local engine, end to end",
            f"{workers} workers",
            rate(measured["local_engine"]),
            f"{measured['local_engine']['frames_per_s'] / limit:.0%}",
        ],
        *(
            [
                f"Ray engine, {actors} actor(s)",
                "one node, 0.5 CPU each",
                rate(cell),
                f"{cell['frames_per_s'] / limit:.0%}",
            ]
            for actors, cell in measured.get("ray_engine", {}).items()
        ),
        [
            "plain loop",
            "1 process, batch 1",
            rate(measured["plain_loop"]),
            f"{measured['plain_loop']['frames_per_s'] / limit:.0%}",
        ],
    ]
    gop = measured["long_gop"]
    gop_rows = [
        [
            align,
            str(cell["frames"]),
            str(cell["decoded"]),
            f"{cell['decoded_per_analysed']:.2f}",
            f"{cell['seconds'] * 1000:.0f}",
        ]
        for align, cell in gop.items()
    ]
    memory = measured["memory"]
    return [
        {
            "title": f"Throughput, every frame of {VIDEOS} videos of {VIDEO_S:g} s "
            "(25 frames/s, 128x128 H.264)",
            "columns": ["contender", "parallelism", "frames/s, median (min-max)", "of the limit"],
            "rows": rows,
        },
        {
            "title": "Sampling 1 frame/s from 120 s of video with a keyframe every 10 s",
            "columns": ["align", "frames analysed", "frames decoded", "decoded per analysed", "ms"],
            "rows": gop_rows,
        },
        {
            "title": "Memory: one 160 s video, every frame, through the pipeline",
            "columns": [
                "frames",
                "seconds",
                "RSS after start (MB)",
                "peak (MB)",
                "growth (MB)",
                "largest queue",
            ],
            "rows": [
                [
                    str(memory["frames"]),
                    f"{memory['seconds']:.1f}",
                    f"{memory['rss_after_start_mb']:.0f}",
                    f"{memory['rss_peak_mb']:.0f}",
                    f"{memory['growth_mb']:.1f}",
                    str(memory["largest_queue"]),
                ]
            ],
        },
    ]


def _limit_target(results: Mapping[str, Any]) -> Outcome:
    measured = results
    if "local_engine" not in measured:
        return Outcome(None, "not measured")
    limit = min(
        measured["decode_alone"]["frames_per_s"], measured["inference_alone"]["frames_per_s"]
    )
    share = measured["local_engine"]["frames_per_s"] / limit
    return Outcome(
        share >= OF_LIMIT,
        f"{share:.0%} ({measured['local_engine']['frames_per_s']:.0f} of {limit:.0f} frames/s)",
    )


def _gop_target(results: Mapping[str, Any]) -> Outcome:
    measured = results
    if "long_gop" not in measured:
        return Outcome(None, "not measured")
    keyframe = measured["long_gop"]["keyframe"]["decoded_per_analysed"]
    exact = measured["long_gop"]["exact"]["decoded_per_analysed"]
    return Outcome(
        keyframe <= DECODED_PER_ANALYSED,
        f"{keyframe:.2f} keyframe-aligned; exact times {exact:.1f}",
    )


def _memory_target(results: Mapping[str, Any]) -> Outcome:
    measured = results
    if "memory" not in measured:
        return Outcome(None, "not measured")
    growth = measured["memory"]["growth_mb"]
    return Outcome(growth < RSS_GROWTH_MB, f"{growth:.1f} MB")
