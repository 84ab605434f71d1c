"""The Ray engine on a local Ray (two actors of half a core each on this machine): the same
job gives the same bytes as on the local engine, a cancelled video stops, and closing it
leaves the job to resume."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from batch_video.classifier import ModelManifest
from batch_video.engines import LocalEngine, RayEngine
from batch_video.jobs import Job, JobSpec, run_job
from batch_video.pipeline import PipelineOptions
from batch_video.training import TrainingReport
from batch_video.video import Sampling

os.environ.setdefault("RAY_AUTH_MODE", "disabled")


@pytest.fixture(scope="module")
def ray_engine() -> Iterator[RayEngine]:
    import ray

    engine = RayEngine(2, num_cpus=0.5)
    yield engine
    engine.close()
    ray.shutdown()


def _job(folder: Path, videos: list[Path], model: TrainingReport) -> Job:
    spec = JobSpec(
        folder.name,
        tuple(str(v) for v in videos),
        Sampling(interval_s=0.5),
        PipelineOptions(),
        str(model.output_dir),
        "onnxruntime",
        ModelManifest.load(model.output_dir).version,
    )
    return Job.create(folder, spec)


def test_a_job_on_ray_ends_byte_identical_to_the_local_engine(
    ray_engine: RayEngine, demo_model: TrainingReport, video_root: Path, tmp_path: Path
) -> None:
    videos = [*sorted((video_root / "demo").glob("*.mp4")), video_root / "corrupt.mp4"]
    on_ray = run_job(_job(tmp_path / "job", videos, demo_model), ray_engine)
    assert (on_ray.videos, on_ray.failed) == (4, 1)
    local = LocalEngine(1)
    try:
        run_job(_job(tmp_path / "again" / "job", videos, demo_model), local)
    finally:
        local.close()
    for name in ("results.parquet", "summary.json"):
        assert (tmp_path / "job" / name).read_bytes() == (
            tmp_path / "again" / "job" / name
        ).read_bytes(), name


def test_a_video_cancelled_on_ray_stops_and_the_rest_finish(
    ray_engine: RayEngine, demo_model: TrainingReport, video_root: Path, tmp_path: Path
) -> None:
    videos = [video_root / "demo" / "video-000.mp4", video_root / "long.mp4"]
    job = _job(tmp_path / "job", videos, demo_model)
    job.cancel(1)
    report = run_job(job, ray_engine)
    assert [r.status for r in report.records] == ["done", "cancelled"]
