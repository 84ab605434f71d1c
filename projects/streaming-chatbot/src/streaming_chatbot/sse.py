"""Server-sent events in OpenAI's chat.completion.chunk format, ending with [DONE]."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable

from streaming_chatbot.engines.base import EngineEvent, Finished, TextDelta
from streaming_chatbot.event_stream import stream_error

Extras = Callable[[str], dict[str, object]]


def no_extras(text: str) -> dict[str, object]:
    """Extras for an answer that carries nothing beside OpenAI's fields."""
    return {}


async def chat_completion_chunks(
    events: AsyncIterator[EngineEvent],
    *,
    completion_id: str,
    created: int,
    model: str,
    request_id: str | None,
    include_usage: bool,
    on_finish: Callable[[str, Finished], Awaitable[None]] | None = None,
    extras: Extras = no_extras,
) -> AsyncIterator[bytes]:
    """The role first, then text as it comes, then the finish reason, then [DONE].

    `extras`, given the whole answer, returns fields the finishing chunk carries beside
    OpenAI's (as the completion carries them when not streamed).

    With `include_usage` (OpenAI's `stream_options.include_usage`), every chunk carries
    `"usage": null` and one more chunk, with no choices, carries the token usage before
    [DONE]. An error after the first chunk can no longer change the status code: it goes
    into the stream as an `error` event, in the same shape as error bodies.
    """
    usage_field: dict[str, object] = {"usage": None} if include_usage else {}

    def chunk(delta: dict[str, str], finish: str | None = None, **more: object) -> bytes:
        choices = [{"index": 0, "delta": delta, "finish_reason": finish}]
        return _event(completion_id, created, model, choices, **usage_field, **more)

    yield chunk({"role": "assistant", "content": ""})
    parts: list[str] = []
    try:
        async with contextlib.aclosing(events):
            async for event in events:
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                    yield chunk({"content": event.text})
                elif isinstance(event, Finished):
                    text = "".join(parts)
                    if on_finish is not None:
                        await on_finish(text, event)
                    yield chunk({}, event.reason, **extras(text))
                    if include_usage:
                        yield _event(completion_id, created, model, [], usage=event.usage())
    except Exception as exc:
        yield b"data: " + json.dumps(stream_error(exc, request_id)).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


def _event(
    completion_id: str, created: int, model: str, choices: list[object], **extra: object
) -> bytes:
    body = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": model,
        "choices": choices,
        **extra,
    }
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"
