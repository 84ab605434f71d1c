"""ASGI middleware: request ids, access logs, HTTP metrics, server spans and admission.

Written as plain ASGI rather than BaseHTTPMiddleware, which buffers and adds a task
per request on the hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from batch_video.admission import BODY_COPIES, MemoryBudget, Reservation
from batch_video.errors import PayloadTooLarge, ServiceError, error_response
from batch_video.observability import Metrics, request_id_var

logger = logging.getLogger("batch_video.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# Probes and scrapes are frequent and uninteresting; they are counted but not logged.
_QUIET_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
# A refused body is read and dropped up to this much, so the client reads the refusal.
DRAIN_BYTES = 64 * 1024 * 1024
DRAIN_S = 10.0


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


class AdmissionMiddleware:
    """Refuses a body before reading it: over the size limit (413), or more than the memory
    budget can hold (503 with Retry-After). A declared length is checked before the first
    byte is read; a streamed one as it arrives. What the route reads stays reserved until
    the response is sent."""

    def __init__(self, app: ASGIApp, max_bytes: int, budget: MemoryBudget) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length", b"")
        expects_continue = headers.get(b"expect", b"").lower() == b"100-continue"
        reservation = Reservation(self.budget)
        try:
            if declared.isdigit():
                try:
                    _admit(reservation, int(declared), self.max_bytes)
                except ServiceError as exc:
                    # Answered before the body is read, in the service's one error format;
                    # a client that waits for 100 Continue sends nothing to drain.
                    drain = not expects_continue and int(declared) <= DRAIN_BYTES
                    await _refuse(scope, receive, send, exc, drain=drain)
                    return
            await self._streamed(scope, receive, send, reservation, counted=declared.isdigit())
        finally:
            reservation.release()

    async def _streamed(
        self, scope: Scope, receive: Receive, send: Send, reservation: Reservation, *, counted: bool
    ) -> None:
        received = 0
        refusal: ServiceError | None = None
        answered = False
        body_done = False

        async def counting_receive() -> Message:
            nonlocal received, refusal, body_done
            message = await receive()
            body_done = message["type"] != "http.request" or not message.get("more_body", False)
            if message["type"] == "http.request" and not counted:
                chunk = len(message.get("body", b""))
                received += chunk
                try:
                    if received > self.max_bytes:
                        raise PayloadTooLarge(too_large_message(self.max_bytes))
                    reservation.grow(chunk * BODY_COPIES, "the request body")
                except ServiceError as exc:
                    refusal = exc
                    raise
            return message

        async def send_refusal_once_refused(message: Message) -> None:
            # A framework may wrap the error raised while it reads the body (FastAPI answers
            # 400 to any failure reading a JSON body): the client is owed the 413 or 503.
            nonlocal answered
            if refusal is None:
                await send(message)
                return
            if not answered:
                answered = True
                await _refuse(scope, receive, send, refusal, drain=not body_done)

        await self.app(scope, counting_receive, send_refusal_once_refused)


def _admit(reservation: Reservation, declared: int, max_bytes: int) -> None:
    if declared > max_bytes:
        raise PayloadTooLarge(too_large_message(max_bytes))
    reservation.grow(declared * BODY_COPIES, "the request body")


async def _refuse(
    scope: Scope, receive: Receive, send: Send, error: ServiceError, *, drain: bool
) -> None:
    """Sends the error whole, then reads and drops what the client is still sending (up to
    DRAIN_BYTES, for DRAIN_S) before ending the response: a client that writes its whole
    body before it reads (urllib, requests) then reads the answer instead of a reset."""
    response = error_response(
        Request(scope), error.status_code, error.code, error.message, headers=error.headers
    )
    start = {"status": response.status_code, "headers": response.raw_headers}
    await send({"type": "http.response.start", **start})
    await send({"type": "http.response.body", "body": response.body, "more_body": drain})
    if not drain:
        return
    drained = 0
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(DRAIN_S):
            while drained <= DRAIN_BYTES:
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body", False):
                    break
                drained += len(message.get("body", b""))
    await send({"type": "http.response.body", "body": b""})


def too_large_message(max_bytes: int) -> str:
    return f"request body is larger than the {max_bytes} byte limit"
