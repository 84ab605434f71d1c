"""Jobs on disk, and running them on an engine.

A job is a folder under the jobs directory:

    job.json             what was asked: the videos, the sampling, the model's version
    videos/00000.parquet one video's rows, committed with
    videos/00000.json    its manifest (what a restart trusts; see results.py)
    videos/00000.progress.json   how far a running video has got (advisory)
    cancel, cancel-00000 asked to stop: the whole job, or one video
    results.parquet      every video's rows, in order, once all are through
    summary.json         per video: status, reason, segments; written last, it marks the
                         job finished
    job.lock             held (flock) by the one process running the job: replicas sharing
                         the jobs folder, or the command line beside the service, never
                         run a job twice at once

Running a job submits every video without a manifest to the engine and waits; a video
that fails (unreadable, corrupt, empty) gets a manifest saying why, and the job goes on. A
process killed at any point leaves committed videos intact and the rest redone on the next
run, so the result is the same as a run straight through.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from batch_video.pipeline import PipelineOptions
from batch_video.results import VideoRecord, combine, commit_video, committed, write_json
from batch_video.video import Sampling

logger = logging.getLogger(__name__)

JobStatus = Literal["queued", "running", "done", "cancelled"]
VIDEO_SUFFIXES = (".mp4", ".mkv", ".webm", ".mov", ".avi", ".m4v")


@dataclass(frozen=True)
class JobSpec:
    job_id: str
    videos: tuple[str, ...]  # absolute paths
    sampling: Sampling
    options: PipelineOptions
    model_dir: str
    runtime: str
    model_version: str

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> JobSpec:
        return cls(
            job_id=raw["job_id"],
            videos=tuple(raw["videos"]),
            sampling=Sampling(**raw["sampling"]),
            options=PipelineOptions(**raw["options"]),
            model_dir=raw["model_dir"],
            runtime=raw["runtime"],
            model_version=raw["model_version"],
        )


@dataclass(frozen=True)
class VideoTask:
    """One video of a job, as an engine's worker gets it."""

    folder: str  # the job's folder
    index: int
    video: str
    sampling: Sampling
    options: PipelineOptions
    model_dir: str
    runtime: str
    model_version: str


class JobBusy(Exception):
    """Another process is running the job."""


class Interrupted(Exception):
    """The engine was closed with the job unfinished; the next run goes on from there."""


class Engine(Protocol):
    """Runs video tasks somewhere: worker processes here, or a Ray cluster."""

    closing: bool

    def submit(self, task: VideoTask) -> Future[VideoRecord]: ...

    def close(self) -> None: ...


def new_job_id() -> str:
    return uuid.uuid4().hex


def videos_in(folder: Path) -> list[Path]:
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in VIDEO_SUFFIXES and p.is_file()
    )


class Job:
    """A job's folder: its spec, its committed videos, its progress and its end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.videos_dir = folder / "videos"

    @classmethod
    def create(cls, folder: Path, spec: JobSpec) -> Job:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "videos").mkdir(exist_ok=True)
        write_json(folder / "job.json", spec.to_json())
        return cls(folder)

    @property
    def spec(self) -> JobSpec:
        return JobSpec.from_json(json.loads((self.folder / "job.json").read_text()))

    @property
    def finished(self) -> bool:
        return (self.folder / "summary.json").is_file()

    @property
    def cancel_requested(self) -> bool:
        return (self.folder / "cancel").exists()

    @property
    def running_elsewhere(self) -> bool:
        """Whether a process holds the job's lock (this one included)."""
        try:
            with self.lock():
                return False
        except JobBusy:
            return True

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        descriptor = os.open(self.folder / "job.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise JobBusy(f"job {self.folder.name} is running in another process") from None
            yield
        finally:
            os.close(descriptor)  # closing it releases the lock, as a process's death does

    def cancel(self, index: int | None = None) -> None:
        name = "cancel" if index is None else f"cancel-{index:05d}"
        (self.folder / name).touch()

    def video_cancelled(self, index: int) -> bool:
        return self.cancel_requested or (self.folder / f"cancel-{index:05d}").exists()

    def record(self, index: int) -> VideoRecord | None:
        return committed(self.videos_dir, index)

    def progress(self, index: int) -> dict[str, float]:
        path = self.videos_dir / f"{index:05d}.progress.json"
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {}

    def tasks(self) -> list[VideoTask]:
        """The videos with no committed manifest: what is left to do."""
        spec = self.spec
        return [
            VideoTask(
                str(self.folder),
                index,
                video,
                spec.sampling,
                spec.options,
                spec.model_dir,
                spec.runtime,
                spec.model_version,
            )
            for index, video in enumerate(spec.videos)
            if self.record(index) is None
        ]

    def finish(self) -> dict[str, Any]:
        """Writes the job's whole result; the summary goes last, marking it finished."""
        spec = self.spec
        records = [self.record(index) for index in range(len(spec.videos))]
        done = [r for r in records if r is not None]
        combine(self.videos_dir, done, self.folder / "results.parquet")
        summary = {
            "job_id": spec.job_id,
            "model_version": spec.model_version,
            "cancelled": self.cancel_requested,
            "videos": [r.to_json() for r in done],
        }
        write_json(self.folder / "summary.json", summary)
        return summary


@dataclass
class RunReport:
    videos: int
    redone: int  # videos run this time (the rest were committed before)
    failed: int
    seconds: float
    records: list[VideoRecord] = field(default_factory=list)


def run_job(
    job: Job,
    engine: Engine,
    *,
    on_video: Callable[[VideoRecord], None] | None = None,
) -> RunReport:
    """Runs what is left of `job` on `engine`, then writes its result. Blocks until then;
    a video the engine cannot run is recorded as failed with why. Raises JobBusy if
    another process is running it."""
    with job.lock():
        return _run_job(job, engine, on_video)


def _run_job(job: Job, engine: Engine, on_video: Callable[[VideoRecord], None] | None) -> RunReport:
    started = time.perf_counter()
    tasks = job.tasks()
    futures = [(task, engine.submit(task)) for task in tasks]
    failed = 0
    records: list[VideoRecord] = []
    for task, future in futures:
        try:
            record = future.result()
        except Exception as exc:
            if engine.closing:  # shutting down: the video is left to the next run
                raise Interrupted(f"job {job.folder.name} was interrupted") from exc
            # A worker that died on this video (out of memory, say): it failed, not the job.
            logger.exception("video task failed", extra={"video": task.video})
            reason = f"the worker failed: {exc!r}"
            record = commit_video(
                job.videos_dir, VideoRecord(task.index, task.video, "failed", reason=reason), []
            )
        failed += record.status == "failed"
        records.append(record)
        if on_video is not None:
            on_video(record)
    job.finish()
    return RunReport(
        len(job.spec.videos), len(tasks), failed, time.perf_counter() - started, records
    )
