"""The app factory: `uvicorn --factory ensemble.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI

from ensemble import api
from ensemble.runtime import EnsembleRuntime
from ensemble.service import create_service_app
from ensemble.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_service_app(
        settings,
        runtime=lambda metrics, tracer: EnsembleRuntime(settings, metrics, tracer),
        routers=[api.router],
    )
