"""A server-sent event stream that stops its producer the moment the response ends,
and the error event it sends when generation fails after the status line went out."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import anyio
from fastapi.responses import StreamingResponse
from starlette.types import Send

from streaming_chatbot.errors import ServiceError

logger = logging.getLogger(__name__)

# OpenAPI for a route that streams server-sent events when asked and answers JSON otherwise.
EVENT_STREAM_CONTENT: dict[str, object] = {"text/event-stream": {}}


class EventStreamResponse(StreamingResponse):
    """Server-sent events whose generator is closed the moment the response ends.

    When a client hangs up, the server cancels the task that writes the response, which
    can leave the generator suspended, to be closed whenever it is garbage collected.
    Closing it here runs its cleanup (stop the engine, free the slot) at once.
    """

    def __init__(self, content: AsyncIterator[bytes]) -> None:
        super().__init__(
            content,
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
        self._events = content

    async def stream_response(self, send: Send) -> None:
        try:
            await super().stream_response(send)
        finally:
            aclose = getattr(self._events, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()


def stream_error(exc: Exception, request_id: str | None) -> dict[str, object]:
    """The body of a mid-stream error event, in the shape of error responses; logged.
    Call it from the `except` block that caught `exc`."""
    if isinstance(exc, ServiceError):
        logger.warning("stream failed", extra={"code": exc.code, "reason": exc.message})
        error = {"code": exc.code, "message": exc.message, "request_id": request_id}
    else:
        logger.exception("stream failed")
        error = {"code": "internal_error", "message": "internal error", "request_id": request_id}
    return {"error": error}
