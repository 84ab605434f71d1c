"""The LLM engine contract: one interface for an in-process model and a remote vLLM.

The gateway applies the chat template and counts tokens itself, then hands an engine the
prompt's token ids and sampling parameters. An engine streams `TextDelta` events and ends
with one `Finished`. Closing the stream early (the client went away) must stop the
engine producing tokens for that request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import Literal, Protocol

from rag_qa.errors import ServiceError


@dataclass(frozen=True, slots=True)
class SamplingParams:
    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    # Generate max_tokens even past the end-of-sequence token (benchmarks, load tests).
    ignore_eos: bool = False

    @property
    def greedy(self) -> bool:
        return self.temperature < 1e-5


@dataclass(frozen=True, slots=True)
class GenerationRequest:
    request_id: str
    prompt_token_ids: list[int]
    params: SamplingParams


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class Finished:
    reason: Literal["stop", "length"]
    prompt_tokens: int
    completion_tokens: int
    # Seconds the engine worked on this generation (prefill and decode), where it knows.
    engine_s: float | None = None

    def usage(self) -> dict[str, int]:
        """Token counts in OpenAI's `usage` shape."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


EngineEvent = TextDelta | Finished


class ContextLengthExceeded(ServiceError):
    status_code = HTTPStatus.BAD_REQUEST
    code = "context_length_exceeded"


class UpstreamError(ServiceError):
    """The engine answered, but with an error this gateway cannot fix for the client."""

    status_code = HTTPStatus.BAD_GATEWAY
    code = "upstream_error"


class UpstreamRejected(ServiceError):
    """The engine refused the request as invalid: the client's to fix."""

    status_code = HTTPStatus.BAD_REQUEST
    code = "upstream_rejected"


class FirstTokenTimeout(ServiceError):
    status_code = HTTPStatus.GATEWAY_TIMEOUT
    code = "first_token_timeout"


class Engine(Protocol):
    """What the gateway needs from an engine."""

    name: str
    # Generations it decodes at once; beyond them a generation waits for one to end.
    concurrency: int
    # Bytes of this process's memory a generation's KV cache holds per token of prompt and
    # answer; 0 where the cache lives in another process (a vLLM server).
    kv_bytes_per_token: int

    @property
    def ready(self) -> bool: ...

    @property
    def failure(self) -> str | None: ...

    async def start(self) -> None:
        """Loads the model or waits for the server; `ready` turns true when it returns."""

    async def stop(self) -> None: ...

    def generate(self, request: GenerationRequest) -> AsyncIterator[EngineEvent]:
        """Streams the completion; closing the iterator cancels the generation."""
        ...


class StopMatcher:
    """Finds stop sequences in streamed text and holds back what may begin one."""

    def __init__(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(stop for stop in stops if stop)
        self._pending = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Text that is safe to emit now; sets `stopped` once a stop sequence appears."""
        if not self._stops:
            return text
        self._pending += text
        hits = [index for stop in self._stops if (index := self._pending.find(stop)) >= 0]
        if hits:
            self.stopped = True
            out, self._pending = self._pending[: min(hits)], ""
            return out
        hold = max(
            (
                size
                for stop in self._stops
                for size in range(1, len(stop))
                if self._pending.endswith(stop[:size])
            ),
            default=0,
        )
        cut = len(self._pending) - hold
        out, self._pending = self._pending[:cut], self._pending[cut:]
        return out

    def flush(self) -> str:
        out, self._pending = self._pending, ""
        return out
