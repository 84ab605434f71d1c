"""The app factory's shared half: lifespan, probes, metrics, traces, errors.

A project supplies its model runtime (what loads and warms the model) and its routers.
The model loads in the background so `/readyz` can answer 503 while it warms up and
`/healthz` stays live; a failed load turns both red so the orchestrator restarts the pod.
Routes reach the runtime through `ready_runtime`, which answers 503 until it is ready.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, Literal, Protocol

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from opentelemetry import trace
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from batch_video import __version__
from batch_video.admission import MemoryBudget, budget_bytes
from batch_video.errors import (
    NotReady,
    error_response,
    error_responses,
    install_error_handlers,
)
from batch_video.middleware import AdmissionMiddleware, RequestContextMiddleware
from batch_video.observability import Metrics, configure_logging
from batch_video.settings import Settings
from batch_video.tracing import configure_tracing

logger = logging.getLogger(__name__)


class ModelRuntime(Protocol):
    """What the service needs from a project's model runtime."""

    @property
    def ready(self) -> bool: ...

    @property
    def failure(self) -> str | None: ...

    @property
    def working_bytes(self) -> int:
        """Memory the model takes while it works, beyond what it holds once loaded, that
        no request reserves (one batch's activations, say); kept out of the budget."""
        ...

    async def start(self) -> None:
        """Loads and warms up the model; `ready` turns true when it returns."""

    async def stop(self) -> None: ...


# Builds the runtime from the app's metrics and tracer.
RuntimeFactory = Callable[[Metrics, trace.Tracer], ModelRuntime]


def create_service_app(
    settings: Settings, *, runtime: RuntimeFactory, routers: Sequence[APIRouter]
) -> FastAPI:
    configure_logging(settings)
    metrics = Metrics()
    # This app's own provider when APP_TRACING_ENABLED is on; else the API's no-op tracer.
    provider = configure_tracing(settings)
    tracer = provider.get_tracer(__name__) if provider else trace.NoOpTracer()
    model_runtime = runtime(metrics, tracer)
    budget = MemoryBudget(budget_bytes(settings), metrics, retry_after_s=settings.retry_after_s)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loading = asyncio.create_task(_start(model_runtime, settings, budget), name="model-load")
        try:
            yield
        finally:
            loading.cancel()
            await asyncio.gather(loading, return_exceptions=True)
            await model_runtime.stop()
            if provider is not None:
                provider.shutdown()

    app = FastAPI(
        title="batch-video",
        description="Analyses videos frame by frame in resumable jobs, with results as Parquet",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.runtime = model_runtime
    app.state.metrics = metrics
    app.state.memory_budget = budget
    install_error_handlers(app)
    app.include_router(_probes_router())
    # What any route can answer, documented on every route with the error body's schema.
    common = error_responses(400, 413, 422, 503)
    for router in routers:
        app.include_router(router, responses=common)
    # The last middleware added runs first: the request context wraps admission, so a
    # refused body is still counted and logged with its request id.
    app.add_middleware(AdmissionMiddleware, max_bytes=settings.max_body_bytes, budget=budget)
    app.add_middleware(RequestContextMiddleware, metrics=metrics, tracer=tracer)
    if settings.trusted_proxies:
        # Outermost: everything after it sees the client the trusted proxy named.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxies)
    return app


def ready_runtime(request: Request) -> Any:
    """The app's model runtime, or NotReady (503 with Retry-After) while it loads."""
    runtime = request.app.state.runtime
    if not runtime.ready:
        settings: Settings = request.app.state.settings
        raise NotReady("the model is loading", retry_after_s=settings.retry_after_s)
    return runtime


async def _start(runtime: ModelRuntime, settings: Settings, budget: MemoryBudget) -> None:
    try:
        await runtime.start()
    except asyncio.CancelledError:
        raise
    except Exception:
        # The runtime records the failure; the probes report it.
        logger.exception("model failed to load")
        return
    # What the model and its libraries allocated lives as long as the process: frozen, a
    # full collection no longer walks it. Left to the collector, each one paused every
    # request for up to 139 ms under load (three small torch and ONNX models, 2 cores).
    gc.collect()
    gc.freeze()
    # Now that the model holds its memory, the budget is a share of what is left once its
    # working memory is set aside.
    working_bytes = runtime.working_bytes
    budget.resize(budget_bytes(settings, working_bytes))
    logger.info(
        "memory budget for requests in flight: %d bytes (%d set aside for the model at work)",
        budget.limit_bytes,
        working_bytes,
    )


class ProbeStatus(BaseModel):
    status: Literal["ok", "ready"]


def _probes_router() -> APIRouter:
    router = APIRouter(tags=["operations"])
    failed = error_responses(
        503, s503="The model failed to load (`model_load_failed`) or is loading (`not_ready`)."
    )

    @router.get(
        "/healthz",
        summary="Liveness: the process is up and its model did not fail to load",
        response_model=ProbeStatus,
        responses=failed,
    )
    async def healthz(request: Request) -> JSONResponse:
        runtime: ModelRuntime = request.app.state.runtime
        if runtime.failure is not None:
            return error_response(request, 503, "model_load_failed", runtime.failure)
        return JSONResponse({"status": "ok"})

    @router.get(
        "/readyz",
        summary="Readiness: the model is loaded and warmed up",
        response_model=ProbeStatus,
        responses=failed,
    )
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
