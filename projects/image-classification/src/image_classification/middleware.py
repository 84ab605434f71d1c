"""ASGI middleware: request ids, access logs, HTTP metrics, server spans and body limits.

Written as plain ASGI rather than BaseHTTPMiddleware, which buffers and adds a task
per request on the hot path.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from image_classification.errors import PayloadTooLarge, error_response
from image_classification.observability import Metrics, request_id_var

logger = logging.getLogger("image_classification.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# Probes and scrapes are frequent and uninteresting; they are counted but not logged.
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class RequestContextMiddleware:
    """Gives each request an id, logs it, and records its count and latency."""

    def __init__(self, app: ASGIApp, metrics: Metrics, tracer: trace.Tracer) -> None:
        self.app = app
        self.metrics = metrics
        self.tracer = tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        incoming = headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        status = 500
        start = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        method = scope["method"]
        self.metrics.in_flight.inc()
        span = self.tracer.start_span(
            method,
            context=propagate.extract(headers),
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": scope["path"],
                "request.id": request_id,
            },
        )
        with trace.use_span(span):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                # Named once routing is done: "GET /v1/items/{item_id}", never the raw path.
                route = _route_of(scope)
                span.update_name(f"{method} {route}")
                span.set_attribute("http.route", route)
                span.set_attribute("http.response.status_code", status)
                if status >= 500:
                    span.set_status(Status(StatusCode.ERROR))
                # Logged inside the span, so the access log carries its trace id.
                self._record(scope, method, route, status, start)
                span.end()
                request_id_var.reset(token)

    def _record(self, scope: Scope, method: str, route: str, status: int, start: float) -> None:
        elapsed = time.perf_counter() - start
        self.metrics.in_flight.dec()
        self.metrics.requests.labels(route, method, str(status)).inc()
        self.metrics.request_latency.labels(route, method).observe(elapsed)
        if scope["path"] not in _QUIET_PATHS or status >= 400:
            logger.info(
                "%s %s %d",
                method,
                scope["path"],
                status,
                extra={"route": route, "status": status, "duration_ms": round(elapsed * 1000, 2)},
            )


def _route_of(scope: Scope) -> str:
    """The route template (`/v1/items/{id}`), never the raw path, to bound label cardinality."""
    route: Any = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class BodySizeLimitMiddleware:
    """Refuses bodies over `max_bytes` with 413 before they are read into memory."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and value.isdigit() and int(value) > self.max_bytes:
                # Answered before the body is read, in the service's one error format.
                await self._too_large(scope)(scope, receive, send)
                return
        received = 0
        too_large = False
        answered = False

        async def counting_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    too_large = True
                    raise PayloadTooLarge(_too_large_message(self.max_bytes))
            return message

        async def send_413_once_too_large(message: Message) -> None:
            # A framework may wrap the error raised while it reads the body (FastAPI answers
            # 400 to any failure reading a JSON body): the client is owed the 413.
            nonlocal answered
            if not too_large:
                await send(message)
                return
            if not answered:
                answered = True
                await self._too_large(scope)(scope, receive, send)

        await self.app(scope, counting_receive, send_413_once_too_large)

    def _too_large(self, scope: Scope) -> JSONResponse:
        return error_response(
            Request(scope),
            PayloadTooLarge.status_code,
            PayloadTooLarge.code,
            _too_large_message(self.max_bytes),
        )


def _too_large_message(max_bytes: int) -> str:
    return f"request body is larger than the {max_bytes} byte limit"
