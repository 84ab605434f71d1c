"""The gateway's side of generation: tokens counted, slots held, streams measured.

`LLM.open()` checks the prompt against the context, reserves the memory its KV cache will
hold (prompt and answer tokens, where the engine decodes in this process), takes a stream
slot, starts the engine and waits for the first token, so every failure up to then is still a proper
HTTP status. What it returns streams the rest and records time to first token,
inter-token latency, throughput and, when the client leaves early, the cancellation.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import heapq
import logging
import math
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from http import HTTPStatus

import anyio
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from rag_qa.admission import MemoryBudget
from rag_qa.engines import create_engine
from rag_qa.engines.base import (
    ContextLengthExceeded,
    Engine,
    EngineEvent,
    Finished,
    FirstTokenTimeout,
    GenerationRequest,
    SamplingParams,
    TextDelta,
)
from rag_qa.errors import NotReady, ServiceError
from rag_qa.observability import Metrics
from rag_qa.settings import Settings

logger = logging.getLogger(__name__)

ChatMessage = dict[str, str]

# Share of the first-token deadline a stream may expect to wait for the engine (the rest is
# margin for streams that run longer than measured, and its own prefill), and the weight of
# the newest stream in the measured stream duration.
ADMIT_SHARE = 0.5
SMOOTHING = 0.2

# Measured on a 2-core CPU: a 200-character prompt tokenises in 0.3 ms, 4,000 characters in
# 7.6 ms. Past this length the tokenizer runs on a thread, so the event loop keeps streaming.
LONG_PROMPT_CHARS = 1000

# The embedded engine's KV cache grows by concatenation, a step holding the old cache and
# the new one at once: what a generation may hold at its peak.
KV_COPIES = 2


class TooManyStreams(ServiceError):
    status_code = HTTPStatus.TOO_MANY_REQUESTS
    code = "too_many_streams"


class StreamSlot:
    """One stream's place, taken before the request's own work (retrieval, say) so that an
    overloaded replica refuses it first. `LLM.open` takes it over; a block that ends
    without opening a generation gives it back."""

    def __init__(self, slots: StreamSlots, taken: Occupancy) -> None:
        self._slots: StreamSlots | None = slots
        self._taken = taken
        self.taken_over = False

    def release(self, streamed_s: float | None = None) -> None:
        if self._slots is not None:
            self._slots.release(self._taken, streamed_s)
            self._slots = None

    def __enter__(self) -> StreamSlot:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.taken_over:
            self.release()


@dataclass(frozen=True)
class Occupancy:
    """A reading of the engine's occupancy: when, and the busy slot-seconds until then."""

    at: float
    busy_s: float


class StreamSlots:
    """Streams a replica admits: at most `limit`, and only those that can start in time.

    The engine decodes `concurrency` generations at once; a stream admitted beyond them
    waits for one to end. The streams in flight are replayed in the order they were
    admitted, each taking the first free engine slot for the measured stream duration, so a
    burst that started together is seen to end together. A stream whose expected wait would
    use more than ADMIT_SHARE of the first-token deadline is refused at once (429 and
    Retry-After), rather than admitted to time out later. Until a duration is measured,
    one round beyond the engine is admitted.

    A duration is measured as if the engine were full: a stream that ran beside fewer
    streams than the engine takes counts as longer, in proportion (decoding on a CPU shares
    its cores, so a stream measured alone runs twice as long beside a second). Where
    batching is nearly free, as on a GPU, that errs towards refusing, and only the streams
    beyond the engine, until streams measured on a full engine correct it.
    """

    def __init__(
        self, limit: int, metrics: Metrics, *, concurrency: int, first_token_timeout_s: float
    ) -> None:
        self.limit = limit
        self.concurrency = concurrency
        self.first_token_timeout_s = first_token_timeout_s
        self.active = 0
        # How long the engine works on a stream (prefill and decode) when full, smoothed.
        self.stream_duration_s: float | None = None
        self._admitted: collections.deque[float] = collections.deque()  # when, oldest first
        self._occupancy = Occupancy(time.monotonic(), 0.0)
        self._metrics = metrics
        metrics.llm_max_streams.set(limit)

    def expected_wait_s(self) -> float:
        """How long a stream admitted now would wait for the engine."""
        if self.active < self.concurrency:
            return 0.0
        duration = self.stream_duration_s
        if duration is None:
            return 0.0 if self.active < 2 * self.concurrency else math.inf
        free_at = [-math.inf] * self.concurrency  # when each engine slot frees, as a heap
        for admitted in self._admitted:
            start = max(admitted, heapq.heappop(free_at))
            heapq.heappush(free_at, start + duration)
        return max(0.0, free_at[0] - time.monotonic())

    def try_acquire(self) -> StreamSlot | None:
        if self.active >= self.limit:
            return None
        if self.expected_wait_s() > ADMIT_SHARE * self.first_token_timeout_s:
            return None
        taken = self._read_occupancy()
        self.active += 1
        self._admitted.append(taken.at)
        self._metrics.llm_active_streams.set(self.active)
        return StreamSlot(self, taken)

    def retry_after_s(self) -> int:
        """When a slot is likely to be free: one stream's share of the engine."""
        if self.stream_duration_s is None:
            return 1
        return max(1, math.ceil(self.stream_duration_s / self.concurrency))

    def release(self, taken: Occupancy, streamed_s: float | None = None) -> None:
        """Frees the slot taken at `taken`; `streamed_s`, the engine's time on the stream,
        feeds the estimate."""
        now = self._read_occupancy()
        self.active -= 1
        self._admitted.popleft()  # streams mostly end in the order they started
        self._metrics.llm_active_streams.set(self.active)
        if streamed_s is None:
            return
        held_s = now.at - taken.at
        busy = (now.busy_s - taken.busy_s) / held_s if held_s > 0 else self.concurrency
        full_s = streamed_s * self.concurrency / min(max(busy, 1.0), self.concurrency)
        previous = self.stream_duration_s
        self.stream_duration_s = (
            full_s if previous is None else previous + SMOOTHING * (full_s - previous)
        )

    def _read_occupancy(self) -> Occupancy:
        """The busy slot-seconds (streams the engine works on, times seconds) until now."""
        now = time.monotonic()
        last = self._occupancy
        busy_s = last.busy_s + min(self.active, self.concurrency) * (now - last.at)
        self._occupancy = Occupancy(now, busy_s)
        return self._occupancy


class Generation:
    """A started generation: the first event is in hand, the rest streams on demand."""

    def __init__(
        self,
        first: EngineEvent,
        rest: AsyncIterator[EngineEvent],
        *,
        started: float,
        metrics: Metrics,
        release: Callable[[float | None], None],
        prompt_tokens: int = 0,
    ) -> None:
        self._first = first
        self._rest = rest
        self._started = started
        self._metrics = metrics
        self._release = release
        self._prompt_tokens = prompt_tokens
        self._deltas = 0
        self._first_at = time.perf_counter()
        self.finished: Finished | None = None

    def stop(self) -> Finished:
        """Ends the generation where it is, as the service decides (an answer that has said
        enough): a finish, not a client's disconnect. The caller then closes `events()`,
        which stops the engine; completion tokens count the text deltas read."""
        if self.finished is None:
            self._record(Finished("stop", self._prompt_tokens, self._deltas), self._first_at)
        return self.finished

    async def events(self) -> AsyncIterator[EngineEvent]:
        """Yields every event once, the final `Finished` last."""
        metrics = self._metrics
        first_at = last = self._first_at = time.perf_counter()
        event = self._first
        left = True  # until the engine finishes or fails, an early end is the client's
        try:
            while True:
                self._deltas += isinstance(event, TextDelta)
                yield event
                if isinstance(event, Finished):
                    self._record(event, first_at)
                    return
                try:
                    event = await anext(self._rest)
                except Exception:
                    left = False
                    raise
                now = time.perf_counter()
                if isinstance(event, TextDelta):
                    metrics.llm_inter_token_latency.observe(now - last)
                last = now
        finally:
            if self.finished is None and left:
                metrics.llm_cancellations.labels(reason="client_disconnect").inc()
            with anyio.CancelScope(shield=True):
                await _close(self._rest)
            # Only a stream the engine finished says how long streams take: the engine's
            # own time on it where it reports one, else from the first token to the end.
            streamed_s = None
            if self.finished is not None:
                streamed_s = self.finished.engine_s or time.perf_counter() - first_at
            self._release(streamed_s)

    async def text(self) -> str:
        async with contextlib.aclosing(self.events()) as events:
            return "".join([event.text async for event in events if isinstance(event, TextDelta)])

    def _record(self, finished: Finished, first_at: float) -> None:
        self.finished = finished
        metrics = self._metrics
        metrics.llm_prompt_tokens.inc(finished.prompt_tokens)
        metrics.llm_completion_tokens.inc(finished.completion_tokens)
        duration = time.perf_counter() - first_at
        if finished.completion_tokens > 1 and duration > 0:
            metrics.llm_output_tokens_per_second.observe(
                (finished.completion_tokens - 1) / duration
            )


class LLM:
    """Tokenizer, engine and stream slots: everything between a route and the model."""

    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.slots: StreamSlots | None = None
        self.tokenizer: PreTrainedTokenizerBase | None = None
        self.engine: Engine | None = None
        self._failure: str | None = None

    @property
    def ready(self) -> bool:
        return self.engine is not None and self.engine.ready

    @property
    def failure(self) -> str | None:
        return self._failure or (self.engine.failure if self.engine else None)

    @property
    def working_bytes(self) -> int:
        """None set aside: each generation reserves its KV cache as it opens (`open`), and
        the forward pass's activations beyond that cache are not accounted."""
        return 0

    async def start(self) -> None:
        started = time.perf_counter()
        try:
            self.tokenizer = await asyncio.to_thread(
                AutoTokenizer.from_pretrained, self.settings.model_path
            )
        except Exception as exc:
            self._failure = f"cannot load the tokenizer from {self.settings.model_path}: {exc}"
            raise
        self.engine = create_engine(self.settings, self.tokenizer, self.metrics)
        self.slots = StreamSlots(
            self.settings.max_concurrent_streams,
            self.metrics,
            concurrency=self.engine.concurrency,
            first_token_timeout_s=self.settings.first_token_timeout_s,
        )
        await self.engine.start()
        self.metrics.model_load_seconds.set(time.perf_counter() - started)
        self.metrics.model_ready.set(1)

    async def stop(self) -> None:
        self.metrics.model_ready.set(0)
        if self.engine is not None:
            await self.engine.stop()

    async def count(self, messages: list[ChatMessage]) -> list[int]:
        """`prompt_ids`, off the event loop when the text is long enough to take a while."""
        if sum(len(m["content"]) for m in messages) < LONG_PROMPT_CHARS:
            return self.prompt_ids(messages)
        return await asyncio.to_thread(self.prompt_ids, messages)

    def prompt_ids(self, messages: list[ChatMessage]) -> list[int]:
        """The chat template applied to `messages`, as the engine will see it."""
        if self.tokenizer is None:
            raise NotReady("the model is loading", retry_after_s=self.settings.retry_after_s)
        encoded = self.tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True
        )
        return list(encoded["input_ids"])

    def budget(self, prompt_tokens: int, max_tokens: int | None) -> int:
        """max_tokens to ask for; ContextLengthExceeded when prompt and answer don't fit."""
        context = self.settings.max_context_tokens
        if max_tokens is None:
            max_tokens = min(self.settings.default_max_tokens, context - prompt_tokens)
        if max_tokens < 1 or prompt_tokens + max_tokens > context:
            self.metrics.llm_rejected.labels(reason="context_length").inc()
            raise ContextLengthExceeded(
                f"the prompt has {prompt_tokens} tokens and max_tokens is {max_tokens}: "
                f"together more than the model's context of {context} tokens",
                details={
                    "prompt_tokens": prompt_tokens,
                    "max_tokens": max_tokens,
                    "max_context_tokens": context,
                },
            )
        return max_tokens

    def admit(self) -> StreamSlot:
        """A stream slot now, or TooManyStreams (429) when none can start in time."""
        slots = self.slots
        if self.engine is None or slots is None or not self.engine.ready:
            raise NotReady("the model is loading", retry_after_s=self.settings.retry_after_s)
        slot = slots.try_acquire()
        if slot is None:
            self.metrics.llm_rejected.labels(reason="too_many_streams").inc()
            raise TooManyStreams(
                f"this replica serves {slots.active} streams ({slots.limit} at most) and a new "
                f"one would not start within the {self.settings.first_token_timeout_s:g} s "
                "first-token deadline; retry shortly",
                headers={"Retry-After": str(slots.retry_after_s())},
            )
        return slot

    async def open(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        *,
        request_id: str,
        started: float,
        budget: MemoryBudget | None = None,
        slot: StreamSlot | None = None,
    ) -> Generation:
        """Starts a generation in `slot` (one is taken when none is given) and waits for
        its first token; from here the slot is given back when the generation ends."""
        slot = slot or self.admit()
        slot.taken_over = True
        assert self.engine is not None
        memory = None
        if budget is not None:
            tokens = len(prompt_ids) + params.max_tokens
            try:
                memory = budget.reserve(
                    tokens * self.engine.kv_bytes_per_token * KV_COPIES,
                    f"a generation of {tokens} tokens (its KV cache)",
                )
            except BaseException:
                slot.release()
                raise

        def release(streamed_s: float | None = None) -> None:
            slot.release(streamed_s)
            if memory is not None:
                memory.release()

        rest = self.engine.generate(GenerationRequest(request_id, prompt_ids, params))
        try:
            first = await asyncio.wait_for(anext(rest), self.settings.first_token_timeout_s)
        except TimeoutError:
            self.metrics.llm_cancellations.labels(reason="timeout").inc()
            release()
            await _close(rest)
            raise FirstTokenTimeout(
                f"no token within {self.settings.first_token_timeout_s:g} s",
            ) from None
        except BaseException:
            release()
            await _close(rest)
            raise
        self.metrics.llm_time_to_first_token.observe(time.perf_counter() - started)
        return Generation(
            first,
            rest,
            started=started,
            metrics=self.metrics,
            release=release,
            prompt_tokens=len(prompt_ids),
        )


async def _close(events: AsyncIterator[EngineEvent]) -> None:
    aclose = getattr(events, "aclose", None)
    if aclose is not None:
        await aclose()
