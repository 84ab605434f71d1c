"""The app factory: `uvicorn --factory streaming_chatbot.app:create_app`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from opentelemetry import trace
from opentelemetry.sdk.trace.export import SpanExporter
from redis.exceptions import RedisError

from streaming_chatbot import __version__, conversation_api, openai_api, web
from streaming_chatbot.errors import error_response
from streaming_chatbot.observability import Metrics, configure_logging, configure_tracing
from streaming_chatbot.runtime import ChatRuntime
from streaming_chatbot.service import create_service_app
from streaming_chatbot.settings import Settings


def create_app(
    settings: Settings | None = None, span_exporter: SpanExporter | None = None
) -> FastAPI:
    settings = settings or Settings()
    configure_logging(settings)
    metrics = Metrics()
    provider = configure_tracing(settings, span_exporter)
    tracer = provider.get_tracer(__name__) if provider else trace.NoOpTracer()
    runtime = ChatRuntime(settings, metrics)
    app = create_service_app(
        settings,
        runtime=runtime,
        routers=[openai_api.router, conversation_api.router],
        metrics=metrics,
        tracer=tracer,
        title="streaming-chatbot",
        description="Streaming chat gateway in front of an LLM engine",
        version=__version__,
        shutdown_hooks=[provider.shutdown] if provider else [],
    )
    app.add_exception_handler(RedisError, _redis_error)
    # The page is public; its requests carry the API key like any other client's.
    app.include_router(web.router)
    app.mount("/static", web.static_files, name="static")
    return app


async def _redis_error(request: Request, exc: Exception) -> JSONResponse:
    return error_response(
        request,
        503,
        "store_unavailable",
        f"the conversation store is unavailable: {exc}",
        headers={"Retry-After": "1"},
    )
