"""The app factory: `uvicorn --factory image_classification.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI

from image_classification import api
from image_classification.runtime import ClassifierRuntime
from image_classification.service import create_service_app
from image_classification.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    return create_service_app(
        settings,
        runtime=lambda metrics, tracer: ClassifierRuntime(settings, metrics, tracer),
        routers=[api.router],
    )
