"""The app factory: `uvicorn --factory batch_video.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI

from batch_video import api
from batch_video.runtime import JobsRuntime
from batch_video.service import create_service_app
from batch_video.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_service_app(
        settings,
        runtime=lambda metrics, tracer: JobsRuntime(settings, metrics),
        routers=[api.router],
    )
