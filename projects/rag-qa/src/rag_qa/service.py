"""The app factory's shared half: lifespan, probes, metrics endpoint, middleware, errors.

A project supplies its model runtime (what loads and warms the model) and its routers.
The model loads in the background so `/readyz` can answer 503 while it warms up and
`/healthz` stays live; a failed load turns both red so the orchestrator restarts the pod.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Protocol

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rag_qa.errors import error_response, install_error_handlers
from rag_qa.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from rag_qa.observability import Metrics
from rag_qa.settings import Settings

logger = logging.getLogger(__name__)


class ModelRuntime(Protocol):
    """What the service needs from a project's model runtime."""

    @property
    def ready(self) -> bool: ...

    @property
    def failure(self) -> str | None: ...

    async def start(self) -> None:
        """Loads and warms up the model; `ready` turns true when it returns."""

    async def stop(self) -> None: ...


def create_service_app(
    settings: Settings,
    *,
    runtime: ModelRuntime,
    routers: Sequence[APIRouter],
    metrics: Metrics,
    tracer: trace.Tracer,
    title: str,
    description: str,
    version: str,
    shutdown_hooks: Sequence[Callable[[], object]] = (),
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(_start(runtime), name="model-load")
        try:
            yield
        finally:
            loading.cancel()
            await asyncio.gather(loading, return_exceptions=True)
            await runtime.stop()
            for hook in shutdown_hooks:
                hook()

    app = FastAPI(title=title, description=description, version=version, lifespan=lifespan)
    app.state.settings = settings
    app.state.runtime = runtime
    app.state.metrics = metrics
    install_error_handlers(app)
    app.include_router(_probes_router())
    for router in routers:
        app.include_router(router)
    # The last middleware added runs first: the request context wraps the size limit,
    # so a 413 is still counted and logged with its request id.
    app.add_middleware(BodySizeLimitMiddleware, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestContextMiddleware, metrics=metrics, tracer=tracer)
    return app


async def _start(runtime: ModelRuntime) -> None:
    try:
        await runtime.start()
    except asyncio.CancelledError:
        raise
    except Exception:
        # The runtime records the failure; the probes report it.
        logger.exception("model failed to load")


def _probes_router() -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get(
        "/healthz", summary="Liveness: the process is up and its model did not fail to load"
    )
    async def healthz(request: Request) -> JSONResponse:
        runtime: ModelRuntime = request.app.state.runtime
        if runtime.failure is not None:
            return error_response(request, 503, "model_load_failed", runtime.failure)
        return JSONResponse({"status": "ok"})

    @router.get("/readyz", summary="Readiness: the model is loaded and warmed up")
    async def readyz(request: Request) -> JSONResponse:
        runtime: ModelRuntime = request.app.state.runtime
        if runtime.failure is not None:
            return error_response(request, 503, "model_load_failed", runtime.failure)
        if not runtime.ready:
            return error_response(
                request, 503, "not_ready", "the model is loading", headers={"Retry-After": "1"}
            )
        return JSONResponse({"status": "ready"})

    @router.get("/metrics", summary="Prometheus metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        registry = request.app.state.metrics.registry
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return router
