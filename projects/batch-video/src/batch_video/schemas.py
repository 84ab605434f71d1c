"""Request and response bodies of the jobs API."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from batch_video.video import Sampling

VideoStatus = Literal["pending", "running", "done", "failed", "cancelled"]


class SamplingBody(BaseModel):
    """Which frames are analysed (see video.py): one every `interval_s` (`fixed`, the
    first frame at or after each time, or with `align: keyframe` the last keyframe before
    it, which decodes only keyframes), every keyframe, or each change of scene."""

    model_config = ConfigDict(extra="forbid")

    mode: Literal["fixed", "keyframes", "scene"] = "fixed"
    interval_s: float = Field(default=1.0, ge=0.01, le=3600)
    align: Literal["exact", "keyframe"] = "exact"
    scene_threshold: float = Field(default=0.12, gt=0, lt=1)
    max_frames: int | None = Field(default=None, ge=1, le=10_000_000)

    def sampling(self) -> Sampling:
        return Sampling(**self.model_dump())


class JobRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"videos": ["demo/video-000.mp4"], "sampling": {"interval_s": 2.0}}]
        },
    )

    videos: list[str] = Field(
        min_length=1,
        max_length=10_000,
        description="Paths of the videos, inside one of the folders APP_VIDEO_ROOTS allows.",
    )
    sampling: SamplingBody = Field(default_factory=SamplingBody)


class AnalyseRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"video": "demo/video-000.mp4"}]},
    )

    video: str = Field(min_length=1, max_length=4096, description="Path of one short video.")
    sampling: SamplingBody = Field(default_factory=SamplingBody)


class VideoProgress(BaseModel):
    index: int
    video: str
    status: VideoStatus
    progress: float = Field(ge=0, le=1)
    frames_analysed: int = 0
    reason: str | None = None


class JobBody(BaseModel):
    job_id: str
    status: Literal["queued", "running", "done", "cancelled"]
    progress: float = Field(ge=0, le=1, description="Share of the videos' duration analysed.")
    eta_s: float | None = Field(default=None, description="Seconds left, at the rate so far.")
    videos_done: int
    videos_failed: int
    videos: list[VideoProgress]
    results: str | None = Field(default=None, description="Where the Parquet rows are, once done.")


class SegmentBody(BaseModel):
    label: str
    start_s: float
    end_s: float
    frames: int
    mean_score: float


class FrameBody(BaseModel):
    frame_index: int
    timestamp_s: float
    labels: list[str]
    scores: list[float]


class AnalysisBody(BaseModel):
    video: str
    model_version: str
    frames: list[FrameBody]
    segments: list[SegmentBody]
    frames_decoded: int
