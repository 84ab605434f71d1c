"""A server-sent event stream that stops its producer the moment the response ends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import anyio
from fastapi.responses import StreamingResponse
from starlette.types import Send


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
