"""The engines that run a job's videos, and the work each worker does for one video.

`local` (the default) is a pool of worker processes on this machine, one per core unless
set: each loads the model once and analyses one video at a time, its decoding overlapped
with its inference (pipeline.py), one intra-op thread each so workers do not fight for the
cores.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path

from batch_video.classifier import FrameClassifier, Runtime, load_classifier
from batch_video.jobs import VideoTask
from batch_video.pipeline import Cancelled, VideoAnalysis, analyse_video
from batch_video.results import VideoRecord, commit_video, write_json
from batch_video.video import UnreadableVideo

PROGRESS_EVERY_S = 0.5


@functools.cache
def _classifier(model_dir: str, runtime: Runtime) -> FrameClassifier:
    return load_classifier(Path(model_dir), runtime, threads=1)


def analyse_task(task: VideoTask) -> VideoRecord:
    """One video, start to commit: its rows and manifest, or a manifest saying why not."""
    folder = Path(task.folder)
    videos = folder / "videos"
    progress_path = videos / f"{task.index:05d}.progress.json"
    last_written = [0.0]

    def cancelled() -> bool:
        return (folder / "cancel").exists() or (folder / f"cancel-{task.index:05d}").exists()

    def progress(analysis: VideoAnalysis, position_s: float) -> None:
        now = time.monotonic()
        if now - last_written[0] >= PROGRESS_EVERY_S:
            last_written[0] = now
            write_json(
                progress_path,
                {
                    "position_s": position_s,
                    "duration_s": analysis.stats.duration_s,
                    "frames_analysed": len(analysis.frames),
                },
            )

    base = VideoRecord(task.index, task.video, "failed", model_version=task.model_version)
    if cancelled():
        return commit_video(videos, _replace(base, status="cancelled", reason="cancelled"), [])
    path = Path(task.video)
    if not path.is_file():
        return commit_video(videos, _replace(base, reason="the file does not exist"), [])
    classifier = _classifier(task.model_dir, task.runtime)  # type: ignore[arg-type]
    try:
        analysis = analyse_video(
            path,
            classifier,
            task.sampling,
            task.options,
            should_stop=cancelled,
            on_progress=progress,
        )
    except Cancelled:
        return commit_video(videos, _replace(base, status="cancelled", reason="cancelled"), [])
    except UnreadableVideo as exc:
        return commit_video(videos, _replace(base, reason=str(exc)), [])
    finally:
        progress_path.unlink(missing_ok=True)
    stats = analysis.stats
    done = _replace(
        base,
        status="done",
        frames_decoded=stats.decoded,
        frames_analysed=stats.analysed,
        duration_s=stats.duration_s,
    )
    return commit_video(videos, done, analysis.frames)


def _replace(record: VideoRecord, **changes: object) -> VideoRecord:
    return VideoRecord.from_json({**record.to_json(), **changes})


def _worker_start() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True).start()


def _exit_with(parent: int) -> None:
    """Ends this worker once the process that started it is gone (killed with SIGKILL,
    say), rather than finishing videos nobody will collect."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


class LocalEngine:
    """Worker processes on this machine."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self.closing = False
        self._pool = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_start,
        )

    def submit(self, task: VideoTask) -> Future[VideoRecord]:
        return self._pool.submit(analyse_task, task)

    def close(self) -> None:
        """Stops at once: queued videos are dropped, running ones killed (each job's
        unfinished videos are redone by its next run)."""
        self.closing = True
        processes = list(getattr(self._pool, "_processes", {}).values())
        self._pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            process.kill()
        for process in processes:
            process.join(timeout=5)
