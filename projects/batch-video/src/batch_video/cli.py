"""Command line: `python -m batch_video <command>`, one of serve, train-demo,
make-demo-videos and run."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from batch_video import commands
from batch_video.settings import Settings

DEMO_DIR = Path("models/demo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="batch_video", description=__doc__)
    subcommands = parser.add_subparsers(dest="command", required=True)

    commands.add_serve(subcommands)

    train = subcommands.add_parser(
        "train-demo", help="train the demo frame classifier (needs .[export])"
    )
    train.add_argument("--output", type=Path, default=DEMO_DIR, help="where to write it")

    videos = subcommands.add_parser(
        "make-demo-videos", help="write videos with digits drawn on them (needs .[export])"
    )
    videos.add_argument("--output", type=Path, default=Path("videos/demo"))
    videos.add_argument("--count", type=int, default=4)
    videos.add_argument("--seconds", type=float, default=16.0, help="each video's length")

    run = subcommands.add_parser(
        "run", help="analyse every video in a folder, as a job; rerun to resume it"
    )
    run.add_argument("folder", type=Path, help="the videos (searched recursively)")
    run.add_argument("--output", type=Path, required=True, help="the job's folder")
    run.add_argument("--interval", type=float, default=1.0, help="seconds between frames")
    run.add_argument("--mode", choices=["fixed", "keyframes", "scene"], default="fixed")
    run.add_argument("--align", choices=["exact", "keyframe"], default="exact")
    run.add_argument("--workers", type=int, help="workers (default: one per core)")
    run.add_argument(
        "--engine", choices=["local", "ray"], help="default: APP_ENGINE, else local processes"
    )

    args = parser.parse_args(argv)
    if args.command == "serve":
        return commands.serve(args.host, args.port)
    if args.command == "train-demo":
        from batch_video.training import train_demo_model

        report = train_demo_model(args.output)
        print(f"held-out accuracy {report.accuracy:.3f} ({report.seconds:.1f} s)")
        print(f"model in {args.output}/")
        return 0 if report.accuracy >= 0.9 else 1
    if args.command == "make-demo-videos":
        from batch_video.demo_videos import demo_scripts, write_folder

        scripts = demo_scripts(args.count, args.seconds)
        for path in write_folder(args.output, scripts):
            print(path)
        return 0
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    from batch_video.classifier import ModelManifest
    from batch_video.engines import make_engine
    from batch_video.jobs import Job, JobSpec, run_job, videos_in
    from batch_video.pipeline import PipelineOptions
    from batch_video.results import VideoRecord
    from batch_video.video import Sampling

    settings = Settings()
    output: Path = args.output
    if (output / "job.json").is_file():
        job = Job(output)
        print(f"resuming the job in {output}/", file=sys.stderr)
    else:
        found = videos_in(args.folder)
        if not found:
            print(f"no videos in {args.folder}", file=sys.stderr)
            return 2
        manifest = ModelManifest.load(settings.model_dir)
        spec = JobSpec(
            job_id=output.name,
            videos=tuple(str(path.resolve()) for path in found),
            sampling=Sampling(mode=args.mode, interval_s=args.interval, align=args.align),
            options=PipelineOptions(
                batch_size=settings.batch_size,
                decode_ahead=settings.decode_ahead,
                top_k=settings.top_k,
                decode_threads=settings.decode_threads,
            ),
            model_dir=str(settings.model_dir.resolve()),
            runtime=settings.runtime,
            model_version=manifest.version,
        )
        job = Job.create(output, spec)
    total = len(job.spec.videos)
    left = len(job.tasks())
    seen = [total - left]
    started = time.monotonic()

    def progress(record: VideoRecord) -> None:
        seen[0] += 1
        rate = (seen[0] - (total - left)) / max(time.monotonic() - started, 1e-9)
        eta = (total - seen[0]) / rate if rate else 0.0
        bar = "#" * (30 * seen[0] // total)
        print(
            f"\r[{bar:<30}] {seen[0]}/{total} videos, eta {eta:.0f} s  {record.status}",
            end="",
            file=sys.stderr,
            flush=True,
        )

    engine = make_engine(
        args.engine or settings.engine,
        args.workers or settings.workers,
        ray_address=settings.ray_address,
        ray_num_cpus=settings.ray_num_cpus,
        ray_num_gpus=settings.ray_num_gpus,
    )
    try:
        report = run_job(job, engine, on_video=progress)
    finally:
        engine.close()
    print(file=sys.stderr)
    print(
        f"{report.videos} videos ({report.redone} run now, {report.failed} failed) in "
        f"{report.seconds:.1f} s; rows in {output / 'results.parquet'}"
    )
    return 0
