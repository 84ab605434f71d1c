"""The app factory: `uvicorn --factory rag_qa.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SpanExporter
from redis.exceptions import RedisError

from rag_qa import __version__, documents_api, qa_api
from rag_qa.errors import error_response
from rag_qa.observability import Metrics, configure_logging, configure_tracing
from rag_qa.runtime import RagRuntime
from rag_qa.service import create_service_app
from rag_qa.settings import Settings


def create_app(
    settings: Settings | None = None, span_exporter: SpanExporter | None = None
) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings)
    metrics = Metrics()
    provider = configure_tracing(settings, span_exporter)
    tracer = provider.get_tracer(__name__) if provider else trace.NoOpTracer()
    runtime = RagRuntime(settings, metrics)
    app = create_service_app(
        settings,
        runtime=runtime,
        routers=[documents_api.router, qa_api.router],
        metrics=metrics,
        tracer=tracer,
        title="rag-qa",
        description="Question answering over your documents, with cited sources",
        version=__version__,
        shutdown_hooks=[provider.shutdown] if provider else [],
    )
    app.add_exception_handler(RedisError, _redis_error)
    return app


async def _redis_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(
        request,
        503,
        "store_unavailable",
        f"the rate-limit store is unavailable: {exc}",
        headers={"Retry-After": "1"},
    )
