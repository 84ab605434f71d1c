"""The engines that run a job's videos, and the work each worker does for one video.

`local` (the default) is a pool of worker processes on this machine, one per core unless
set: each loads the model once and analyses one video at a time, its decoding overlapped
with its inference (pipeline.py), one intra-op thread each so workers do not fight for the
cores. `ray` is a pool of Ray actors doing the same, on one machine or a cluster; Ray is
imported only then.
"""

from __future__ import annotations

import dataclasses
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
                durable=False,  # advisory: a lost update costs nothing
            )

    base = VideoRecord(task.index, task.video, "failed", model_version=task.model_version)
    if cancelled():
        return commit_video(
            videos, dataclasses.replace(base, status="cancelled", reason="cancelled"), []
        )
    path = Path(task.video)
    if not path.is_file():
        return commit_video(videos, dataclasses.replace(base, reason="the file does not exist"), [])
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
        return commit_video(
            videos, dataclasses.replace(base, status="cancelled", reason="cancelled"), []
        )
    except UnreadableVideo as exc:
        return commit_video(videos, dataclasses.replace(base, reason=str(exc)), [])
    finally:
        progress_path.unlink(missing_ok=True)
    stats = analysis.stats
    done = dataclasses.replace(
        base,
        status="done",
        frames_decoded=stats.decoded,
        frames_analysed=stats.analysed,
        duration_s=stats.duration_s,
    )
    return commit_video(videos, done, analysis.frames)


def _worker_start() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    threading.Thread(target=_exit_with, args=(os.getppid(),), daemon=True).start()


def _exit_with(parent: int) -> None:
    """Ends this worker once the process that started it is gone (killed with SIGKILL,
    say), rather than finishing videos nobody will collect."""
    while os.getppid() == parent:
        time.sleep(0.1)
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


class RayEngine:
    """Videos as tasks on a pool of Ray actors, each holding the model once: on this
    machine (`ray.init()` starts a local Ray) or a cluster (`address`). Each actor analyses
    one video at a time with the same pipeline as a local worker, so decoding stays
    GOP-aware rather than a block per frame. Actors ask for `num_cpus` each (fractional, so
    two actors fit on two cores beside Ray's own work) and `num_gpus` when set. A cluster's
    workers must see the videos and the jobs folder at the same paths (shared storage)."""

    def __init__(
        self,
        workers: int | None = None,
        *,
        address: str = "",
        num_cpus: float = 0.5,
        num_gpus: float = 0.0,
    ) -> None:
        import ray

        self._ray = ray
        if not ray.is_initialized():
            ray.init(address=address or None, include_dashboard=False, log_to_driver=False)
        cpus = float(ray.cluster_resources().get("CPU", 1))
        self.workers = workers or max(1, int(cpus / num_cpus))
        self.closing = False
        actor = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)(_RayWorker)
        self._actors = [actor.remote() for _ in range(self.workers)]  # type: ignore[attr-defined]
        self._busy = [0] * self.workers
        self._lock = threading.Lock()

    def submit(self, task: VideoTask) -> Future[VideoRecord]:
        with self._lock:
            index = min(range(self.workers), key=self._busy.__getitem__)
            self._busy[index] += 1
        future: Future[VideoRecord] = self._actors[index].analyse.remote(task).future()

        def done(_: Future[VideoRecord]) -> None:
            with self._lock:
                self._busy[index] -= 1

        future.add_done_callback(done)
        return future

    def close(self) -> None:
        """Kills the actors: their videos are left to the job's next run."""
        self.closing = True
        for actor in self._actors:
            self._ray.kill(actor)
        self._actors = []


class _RayWorker:
    def analyse(self, task: VideoTask) -> VideoRecord:
        return analyse_task(task)


def make_engine(
    engine: str,
    workers: int | None,
    *,
    ray_address: str = "",
    ray_num_cpus: float = 0.5,
    ray_num_gpus: float = 0.0,
) -> LocalEngine | RayEngine:
    if engine == "ray":
        return RayEngine(workers, address=ray_address, num_cpus=ray_num_cpus, num_gpus=ray_num_gpus)
    return LocalEngine(workers)
