"""The service's runtime: the model, the engine, and the jobs it runs.

At start it checks the model loads, starts the engine, and takes up every job a previous
process left unfinished (their committed videos are kept; the rest are redone). Jobs run
`max_running_jobs` at a time, each in a thread that feeds its videos to the shared engine;
more than `max_queued_jobs` waiting are refused with 429 and Retry-After. On shutdown the
engine stops at once and unfinished jobs wait on disk for the next start.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from batch_video.classifier import FrameClassifier, ModelManifest, load_classifier
from batch_video.engines import make_engine
from batch_video.errors import NotReady, Overloaded
from batch_video.jobs import Engine, Interrupted, Job, JobBusy, JobSpec, new_job_id, run_job
from batch_video.observability import Metrics
from batch_video.pipeline import PipelineOptions, VideoAnalysis, analyse_video
from batch_video.results import VideoRecord
from batch_video.schemas import JobBody, VideoProgress
from batch_video.settings import Settings
from batch_video.video import Sampling

logger = logging.getLogger(__name__)


@dataclass
class _Running:
    job: Job
    started: float | None = None  # monotonic, once it runs


class JobsRuntime:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.manifest: ModelManifest | None = None
        self.classifier: FrameClassifier | None = None
        self.engine: Engine | None = None
        self._jobs: dict[str, _Running] = {}
        self._slots = threading.BoundedSemaphore(settings.max_running_jobs)
        self._lock = threading.Lock()
        self._analyses = 0
        self._ready = False
        self._failure: str | None = None

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def failure(self) -> str | None:
        return self._failure

    @property
    def working_bytes(self) -> int:
        return 0  # the model is small and works in the engine's processes

    @property
    def jobs_dir(self) -> Path:
        return self.settings.jobs_dir.resolve()

    async def start(self) -> None:
        settings = self.settings
        try:
            self.manifest = ModelManifest.load(settings.model_dir)
            self.classifier = await asyncio.to_thread(
                load_classifier, settings.model_dir, settings.runtime
            )
        except Exception as exc:
            self._failure = f"cannot load the model in {settings.model_dir}: {exc}"
            raise
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.engine = await asyncio.to_thread(
            make_engine,
            settings.engine,
            settings.workers,
            ray_address=settings.ray_address,
            ray_num_cpus=settings.ray_num_cpus,
            ray_num_gpus=settings.ray_num_gpus,
        )
        for folder in sorted(self.jobs_dir.iterdir()):
            job = Job(folder)
            if (folder / "job.json").is_file() and not job.finished:
                logger.info("resuming job", extra={"job_id": folder.name})
                self._launch(job)
        self.metrics.model_ready.set(1)
        self._ready = True

    async def stop(self) -> None:
        self._ready = False
        self.metrics.model_ready.set(0)
        if self.engine is not None:
            await asyncio.to_thread(self.engine.close)

    # Jobs.

    def submit(self, videos: list[Path], sampling: Sampling) -> JobBody:
        manifest = self._manifest()
        with self._lock:
            waiting = sum(1 for r in self._jobs.values() if not r.job.finished)
            if waiting >= self.settings.max_queued_jobs:
                self.metrics.jobs_refused.inc()
                raise Overloaded(
                    f"{waiting} jobs are queued or running (the limit); retry later",
                    retry_after_s=self.settings.retry_after_s,
                )
            spec = JobSpec(
                job_id=new_job_id(),
                videos=tuple(str(v) for v in videos),
                sampling=sampling,
                options=self._options(),
                model_dir=str(self.settings.model_dir.resolve()),
                runtime=self.settings.runtime,
                model_version=manifest.version,
            )
            job = Job.create(self.jobs_dir / spec.job_id, spec)
            self._launch(job)
        return self.status(spec.job_id)

    def job(self, job_id: str) -> Job | None:
        running = self._jobs.get(job_id)
        if running is not None:
            return running.job
        folder = self.jobs_dir / job_id
        if job_id.isalnum() and (folder / "job.json").is_file():
            return Job(folder)
        return None

    def status(self, job_id: str) -> JobBody:
        job = self.job(job_id)
        if job is None:
            raise KeyError(job_id)
        spec = job.spec
        running = self._jobs.get(job_id)
        videos = [self._video(job, index, video) for index, video in enumerate(spec.videos)]
        progress = sum(v.progress for v in videos) / len(videos)
        finished = job.finished
        if finished:
            status = "cancelled" if job.cancel_requested else "done"
        elif (running is not None and running.started is not None) or job.running_elsewhere:
            status = "running"
        else:
            status = "queued"
        eta = None
        if status == "running" and running is not None and running.started and progress > 0:
            elapsed = time.monotonic() - running.started
            eta = round(elapsed * (1 - progress) / progress, 1)
        return JobBody(
            job_id=job_id,
            status=status,
            progress=round(progress, 4),
            eta_s=eta,
            videos_done=sum(v.status == "done" for v in videos),
            videos_failed=sum(v.status == "failed" for v in videos),
            videos=videos,
            results=f"/v1/jobs/{job_id}/results" if finished else None,
        )

    def cancel(self, job_id: str, index: int | None = None) -> JobBody:
        job = self.job(job_id)
        if job is None:
            raise KeyError(job_id)
        if index is not None and not 0 <= index < len(job.spec.videos):
            raise IndexError(index)
        job.cancel(index)
        return self.status(job_id)

    # The synchronous route: one short video, answered inline.

    def analyse(self, path: Path, sampling: Sampling) -> VideoAnalysis:
        classifier = self.classifier
        if classifier is None:
            raise NotReady("the model is loading", retry_after_s=self.settings.retry_after_s)
        with self._lock:
            if self._analyses >= self.settings.max_concurrent_analyses:
                raise Overloaded(
                    "as many videos as the service analyses at once are in progress",
                    retry_after_s=self.settings.retry_after_s,
                )
            self._analyses += 1
        try:
            return analyse_video(path, classifier, sampling, self._options())
        finally:
            with self._lock:
                self._analyses -= 1

    def _manifest(self) -> ModelManifest:
        if self.manifest is None:
            raise NotReady("the model is loading", retry_after_s=self.settings.retry_after_s)
        return self.manifest

    def _options(self) -> PipelineOptions:
        s = self.settings
        return PipelineOptions(
            batch_size=s.batch_size,
            decode_ahead=s.decode_ahead,
            top_k=s.top_k,
            decode_threads=s.decode_threads,
        )

    def _video(self, job: Job, index: int, video: str) -> VideoProgress:
        record = job.record(index)
        if record is not None:
            return VideoProgress(
                index=index,
                video=video,
                status=record.status,
                progress=1.0,
                frames_analysed=record.frames_analysed,
                reason=record.reason,
            )
        seen = job.progress(index)
        if not seen:
            return VideoProgress(index=index, video=video, status="pending", progress=0.0)
        duration = seen.get("duration_s") or 0
        fraction = min(1.0, seen.get("position_s", 0) / duration) if duration else 0.0
        return VideoProgress(
            index=index,
            video=video,
            status="running",
            progress=round(fraction, 4),
            frames_analysed=int(seen.get("frames_analysed", 0)),
        )

    def _launch(self, job: Job) -> None:
        running = _Running(job)
        self._jobs[job.folder.name] = running
        self.metrics.jobs_queued.inc()
        thread = threading.Thread(target=self._run, args=(running,), daemon=True)
        thread.name = f"job {job.folder.name}"
        thread.start()

    def _run(self, running: _Running) -> None:
        engine = self.engine
        assert engine is not None
        with self._slots:
            self.metrics.jobs_queued.dec()
            if engine.closing:
                return
            running.started = time.monotonic()
            self.metrics.jobs_running.inc()
            try:
                run_job(running.job, engine, on_video=self._count)
                outcome = "cancelled" if running.job.cancel_requested else "done"
            except Interrupted:
                outcome = "interrupted"
            except JobBusy:  # another replica took it up first
                outcome = "elsewhere"
            except Exception:
                logger.exception("job failed", extra={"job_id": running.job.folder.name})
                outcome = "error"
            finally:
                self.metrics.jobs_running.dec()
        self.metrics.jobs.labels(outcome).inc()
        logger.info("job ended", extra={"job_id": running.job.folder.name, "outcome": outcome})

    def _count(self, record: VideoRecord) -> None:
        metrics = self.metrics
        metrics.videos.labels(record.status).inc()
        metrics.frames_decoded.inc(record.frames_decoded)
        metrics.frames_analysed.inc(record.frames_analysed)
