"""The app factory: `uvicorn --factory image_classification.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SpanExporter

from image_classification import __version__, api
from image_classification.observability import Metrics, configure_logging, configure_tracing
from image_classification.runtime import ClassifierRuntime
from image_classification.service import create_service_app
from image_classification.settings import Settings


def create_app(
    settings: Settings | None = None, span_exporter: SpanExporter | None = None
) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings)
    metrics = Metrics(max_batch_size=settings.max_batch_size)
    provider = configure_tracing(settings, span_exporter)
    tracer = provider.get_tracer(__name__) if provider else trace.NoOpTracer()
    runtime = ClassifierRuntime(settings, metrics, tracer)
    return create_service_app(
        settings,
        runtime=runtime,
        routers=[api.router],
        metrics=metrics,
        tracer=tracer,
        title="image-classification",
        description="Image classification API with dynamic micro-batching",
        version=__version__,
        shutdown_hooks=[provider.shutdown] if provider else [],
    )
