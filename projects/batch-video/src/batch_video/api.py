"""The jobs API: submit, follow and cancel jobs, fetch their results; and one short video
analysed inline."""

from __future__ import annotations

import asyncio
import json
from http import HTTPStatus
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import FileResponse
from starlette.responses import JSONResponse

from batch_video.errors import InvalidInput, ServiceError, error_responses
from batch_video.results import segments
from batch_video.runtime import JobsRuntime
from batch_video.schemas import (
    AnalyseRequest,
    AnalysisBody,
    FrameBody,
    JobBody,
    JobRequest,
    SegmentBody,
)
from batch_video.service import ready_runtime
from batch_video.settings import Settings
from batch_video.video import UnreadableVideo, probe_duration

router = APIRouter(prefix="/v1", tags=["jobs"])
Runtime = Annotated[JobsRuntime, Depends(ready_runtime)]


class VideoNotFound(ServiceError):
    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "video_not_found"


class PathNotAllowed(ServiceError):
    status_code = HTTPStatus.FORBIDDEN
    code = "path_not_allowed"


class VideoUnreadable(ServiceError):
    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "video_unreadable"


class VideoTooLong(ServiceError):
    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "video_too_long"


class JobNotFound(ServiceError):
    status_code = HTTPStatus.NOT_FOUND
    code = "job_not_found"


class JobNotFinished(ServiceError):
    status_code = HTTPStatus.CONFLICT
    code = "job_not_finished"


def allowed_video(text: str, settings: Settings) -> Path:
    """The video's real path, if it is a file inside an allowed root (links resolved, so a
    link cannot lead out of them). A relative path is taken in the first root holding it."""
    if "\x00" in text:
        raise VideoNotFound("a path cannot hold a NUL character")
    roots = settings.video_root_paths
    try:
        given = Path(text)
        if not given.is_absolute():
            given = next((r / given for r in roots if (r / given).exists()), roots[0] / given)
        path = given.resolve()
    except (OSError, RuntimeError, ValueError, IndexError) as exc:
        raise VideoNotFound(f"{text!r} is not a usable path: {exc}") from exc
    if not any(path.is_relative_to(root) for root in roots):
        raise PathNotAllowed(
            f"{text!r} is outside the folders videos may come from",
            details={"roots": [str(root) for root in roots]},
        )
    if not path.is_file():
        raise VideoNotFound(f"{text!r} does not exist or is not a file")
    return path


def _runtime_job(runtime: JobsRuntime, job_id: str) -> None:
    if runtime.job(job_id) is None:
        raise JobNotFound(f"no job {job_id!r}")


_JOB_ERRORS = error_responses(401, 404, 422, s404="No such job (`job_not_found`).")
_VIDEO_ERRORS = {
    "s403": "A video outside the folders APP_VIDEO_ROOTS allows (`path_not_allowed`).",
    "s422": "The request does not match the schema (`invalid_request`), or names a video "
    "that does not exist (`video_not_found`).",
}


@router.post(
    "/jobs",
    status_code=202,
    response_model=JobBody,
    responses=error_responses(
        400,
        401,
        403,
        413,
        415,
        422,
        503,
        **_VIDEO_ERRORS,
        s503="The model is loading (`not_ready`), or as many jobs as the service holds are "
        "queued (`overloaded`); see Retry-After.",
    ),
)
async def create_job(body: JobRequest, request: Request, runtime: Runtime) -> JSONResponse:
    """Queues a job over the videos; `GET /v1/jobs/{job_id}` follows it."""
    settings: Settings = request.app.state.settings
    if len(body.videos) > settings.max_videos_per_job:
        raise InvalidInput(
            f"{len(body.videos)} videos; a job takes at most {settings.max_videos_per_job}",
            code="too_many_videos",
        )
    videos = [allowed_video(video, settings) for video in body.videos]
    job = await asyncio.to_thread(runtime.submit, videos, body.sampling.sampling())
    return JSONResponse(
        job.model_dump(), status_code=202, headers={"Location": f"/v1/jobs/{job.job_id}"}
    )


@router.get("/jobs/{job_id}", response_model=JobBody, responses=_JOB_ERRORS)
async def get_job(job_id: str, runtime: Runtime) -> JobBody:
    """The job's progress per video and overall, its ETA and its failures."""
    _runtime_job(runtime, job_id)
    return await asyncio.to_thread(runtime.status, job_id)


@router.delete("/jobs/{job_id}", status_code=202, response_model=JobBody, responses=_JOB_ERRORS)
async def cancel_job(job_id: str, runtime: Runtime) -> JobBody:
    """Cancels the job: videos not yet done stop; those done keep their results."""
    _runtime_job(runtime, job_id)
    return await asyncio.to_thread(runtime.cancel, job_id)


@router.delete(
    "/jobs/{job_id}/videos/{index}", status_code=202, response_model=JobBody, responses=_JOB_ERRORS
)
async def cancel_video(job_id: str, index: int, runtime: Runtime) -> JobBody:
    """Cancels one video of the job; the others go on."""
    _runtime_job(runtime, job_id)
    try:
        return await asyncio.to_thread(runtime.cancel, job_id, index)
    except IndexError:
        raise JobNotFound(f"job {job_id!r} has no video {index}") from None


@router.get(
    "/jobs/{job_id}/results",
    response_class=FileResponse,
    responses={
        200: {"content": {"application/vnd.apache.parquet": {}}, "description": "The rows."},
        **error_responses(401, 404, 409, 422, s409="The job is not finished (`job_not_finished`)."),
    },
)
async def job_results(job_id: str, runtime: Runtime) -> FileResponse:
    """One row per analysed frame (video, frame_index, timestamp_s, labels, scores), as
    Parquet, once the job is finished."""
    _runtime_job(runtime, job_id)
    job = runtime.job(job_id)
    assert job is not None
    if not job.finished:
        raise JobNotFinished(f"job {job_id!r} is not finished")
    return FileResponse(
        job.folder / "results.parquet",
        media_type="application/vnd.apache.parquet",
        filename=f"{job_id}.parquet",
    )


@router.get(
    "/jobs/{job_id}/summary",
    responses=error_responses(
        401, 404, 409, 422, s409="The job is not finished (`job_not_finished`)."
    ),
)
async def job_summary(job_id: str, runtime: Runtime) -> dict[str, object]:
    """Per video, once the job is finished: its status, why it failed, frames decoded and
    analysed, and its label segments (consecutive analysed frames with one top label)."""
    _runtime_job(runtime, job_id)
    job = runtime.job(job_id)
    assert job is not None
    if not job.finished:
        raise JobNotFinished(f"job {job_id!r} is not finished")
    summary: dict[str, object] = json.loads((job.folder / "summary.json").read_text())
    return summary


@router.post(
    "/analyse",
    response_model=AnalysisBody,
    responses=error_responses(400, 401, 403, 413, 415, 422, 503, **_VIDEO_ERRORS),
)
async def analyse(body: AnalyseRequest, request: Request, runtime: Runtime) -> AnalysisBody:
    """Analyses one short video now and answers its frames and segments (up to
    APP_MAX_INLINE_VIDEO_S long); longer work goes in a job."""
    settings: Settings = request.app.state.settings
    path = allowed_video(body.video, settings)
    duration = await asyncio.to_thread(probe_duration, path)
    if duration is not None and duration > settings.max_inline_video_s:
        raise VideoTooLong(
            f"the video is {duration:.0f} s; inline analysis takes up to "
            f"{settings.max_inline_video_s:g} s (submit a job)"
        )
    try:
        analysis = await asyncio.to_thread(runtime.analyse, path, body.sampling.sampling())
    except UnreadableVideo as exc:
        raise VideoUnreadable(f"{body.video!r} cannot be read: {exc}") from exc
    assert runtime.manifest is not None
    return AnalysisBody(
        video=str(path),
        model_version=runtime.manifest.version,
        frames=[
            FrameBody(
                frame_index=f.index,
                timestamp_s=f.timestamp_s,
                labels=list(f.labels),
                scores=list(f.scores),
            )
            for f in analysis.frames
        ],
        segments=[SegmentBody(**vars(s)) for s in segments(analysis.frames)],
        frames_decoded=analysis.stats.decoded,
    )
