"""Dynamic micro-batching: items from many concurrent requests share one model call.

A single worker task drains a bounded queue. It starts a batch as soon as the model is
free, taking everything queued up to `max_batch_size`; while that batch runs, new items
pile up and form the next one. `max_wait_s` lets a partial batch wait a little for
company, counted from when its oldest item arrived, so an item that already waited
behind a busy model is never delayed further. A lone request (no other request waiting
for results) has no company to wait for and runs at once, so batching costs a single
client nothing.

A request reads and decodes its input before its items can be queued; `admit` gives it a
place in the queue first, so a full queue refuses it at once, before that work.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from opentelemetry import trace

from ensemble.errors import InferenceTimeout, NotReady, Overloaded

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

BatchFn = Callable[[Sequence[T]], Sequence[R] | Awaitable[Sequence[R]]]


class _Observed(Protocol):
    def observe(self, amount: float) -> None: ...


class _Gauge(Protocol):
    def set(self, value: float) -> None: ...


class _Counted(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class _CountedByReason(Protocol):
    def labels(self, reason: str, /) -> _Counted: ...


class BatchMetrics(Protocol):
    """What a batcher records: the batching pack's metrics of `Metrics` have these names,
    and a service with several models gives each batcher its own set of the same shape."""

    inference_latency: _Observed
    queue_wait: _Observed
    batch_size: _Observed
    queue_depth: _Gauge
    queue_capacity: _Gauge
    rejected: _CountedByReason


class Admission:
    """A request's place in the queue while it reads and decodes its input: held until its
    items are queued (`submit`) or the request ends."""

    def __init__(self, release: Callable[[], None]) -> None:
        self._release: Callable[[], None] | None = release

    def release(self) -> None:
        if self._release is not None:
            self._release()
            self._release = None

    def __enter__(self) -> Admission:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(eq=False)
class _Pending(Generic[T, R]):
    item: T
    future: asyncio.Future[R]
    queue_span: trace.Span
    enqueued_at: float = field(default_factory=time.perf_counter)


class MicroBatcher(Generic[T, R]):
    """Runs `infer` on batches of queued items and hands each caller its own result.

    Up to `max_concurrent_batches` batches are in flight at once. A synchronous `infer`
    runs on that many dedicated worker threads, so the event loop stays free for I/O and,
    since PyTorch releases the GIL in its kernels, batches run on several cores at once;
    an async `infer` (a remote inference server) is awaited.
    """

    def __init__(
        self,
        infer: BatchFn[T, R],
        *,
        max_batch_size: int,
        max_wait_s: float,
        max_queue_size: int,
        metrics: BatchMetrics,
        retry_after_s: int = 1,
        max_concurrent_batches: int = 1,
        tracer: trace.Tracer | None = None,
        inline: bool = False,
    ) -> None:
        if min(max_batch_size, max_queue_size, max_concurrent_batches) < 1:
            raise ValueError("batch size, queue size and concurrent batches must be at least 1")
        self._infer = infer
        self._is_async = inspect.iscoroutinefunction(infer)
        # A synchronous `infer` so fast that handing it to a worker thread and back costs
        # more than the call itself may run on the event loop instead; it then blocks the
        # loop for as long as it runs, so only a call of bounded, measured length should.
        self.inline = inline
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue_size = max_queue_size
        self.retry_after_s = retry_after_s
        self._metrics = metrics
        self._tracer = tracer or trace.NoOpTracer()
        self._queue: collections.deque[_Pending[T, R]] = collections.deque()
        self._has_items = asyncio.Event()
        self.max_concurrent_batches = max_concurrent_batches
        self._slots = asyncio.Semaphore(max_concurrent_batches)
        self._executor: ThreadPoolExecutor | None = None
        self._worker: asyncio.Task[None] | None = None
        self._running: set[asyncio.Task[None]] = set()
        self._waiting_requests = 0  # submit() calls waiting for their results
        self._admitted = 0  # requests admitted whose items are not queued yet
        metrics.queue_capacity.set(max_queue_size)

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def idle_workers(self) -> int:
        """Batches that could start now: the concurrent batches not in flight."""
        return self.max_concurrent_batches - len(self._running)

    async def start(self) -> None:
        if self._worker is not None:
            return
        if not self._is_async:
            self._executor = ThreadPoolExecutor(
                max_workers=self.max_concurrent_batches, thread_name_prefix="inference"
            )
        self._worker = asyncio.create_task(self._run(), name="micro-batcher")

    async def stop(self) -> None:
        """Stops taking work; whatever is still queued fails with 503 not_ready."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        await asyncio.gather(*self._running, return_exceptions=True)
        while self._queue:
            pending = self._queue.popleft()
            if not pending.future.done():
                pending.future.set_exception(NotReady("the service is shutting down"))
        self._metrics.queue_depth.set(0)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def admit(self) -> Admission:
        """A place in the queue for a request that has yet to read its input, or Overloaded
        (503) at once when the queued items and the requests admitted before it fill it."""
        if len(self._queue) + self._admitted >= self.max_queue_size:
            self._metrics.rejected.labels("queue_full").inc()
            raise Overloaded(
                f"the inference queue is full ({len(self._queue)}/{self.max_queue_size} items, "
                f"{self._admitted} requests being read); retry later",
                retry_after_s=self.retry_after_s,
            )
        self._admitted += 1
        return Admission(self._leave)

    def _leave(self) -> None:
        self._admitted -= 1

    async def submit(
        self, items: Sequence[T], timeout_s: float, admission: Admission | None = None
    ) -> list[R]:
        """Queues all `items` at once (or none) and waits for their results; the request's
        `admission`, if it has one, turns into those items.

        Raises Overloaded (503) when the queue cannot take them all, and
        InferenceTimeout (504) when the results are not ready within `timeout_s`.
        """
        if admission is not None:
            admission.release()
        if not items:
            return []
        if self._worker is None:
            raise NotReady("the model is not loaded yet", retry_after_s=self.retry_after_s)
        if len(self._queue) + len(items) > self.max_queue_size:
            self._metrics.rejected.labels("queue_full").inc(len(items))
            raise Overloaded(
                f"the inference queue is full ({len(self._queue)}/{self.max_queue_size} items); "
                "retry later",
                retry_after_s=self.retry_after_s,
            )
        if (
            self.inline
            and not self._queue
            and not self._running
            and not self._admitted
            and len(items) <= self.max_batch_size
        ):
            # Nothing to merge with, now or soon (no other request admitted and on its way
            # here), and nothing to wait for: the call runs now, as its batch would have,
            # without the trip through the queue.
            return self._run_inline(list(items))
        loop = asyncio.get_running_loop()
        pending = [
            _Pending[T, R](item, loop.create_future(), self._tracer.start_span("queue"))
            for item in items
        ]
        self._queue.extend(pending)
        self._metrics.queue_depth.set(len(self._queue))
        self._waiting_requests += 1
        self._has_items.set()
        futures = [p.future for p in pending]
        answered = False
        try:
            # asyncio.wait, not wait_for(gather(...)): a gather cancelled at the timeout (or
            # with its caller) would end holding a CancelledError that nothing retrieves,
            # which asyncio logs as an error.
            done, _ = await asyncio.wait(
                futures, timeout=timeout_s, return_when=asyncio.FIRST_EXCEPTION
            )
            # Every failure is read, so none is reported as never retrieved.
            failures = [f.exception() for f in done]
            failure = next((exc for exc in failures if exc is not None), None)
            if failure is not None:
                raise failure
            if len(done) < len(futures):
                self._metrics.rejected.labels("timeout").inc(len(items))
                raise InferenceTimeout(f"inference did not finish within {timeout_s:g} s")
            answered = True
            return [f.result() for f in futures]
        finally:
            self._waiting_requests -= 1
            # Cancelled futures are skipped by the worker, so an abandoned request's items
            # never reach the model; those still queued leave the queue now, or behind a
            # stalled model they would hold places that live requests need.
            for future in futures:
                future.cancel()
            if not answered:
                self._purge({id(p) for p in pending})

    def _purge(self, abandoned: set[int]) -> None:
        kept: collections.deque[_Pending[T, R]] = collections.deque()
        for pending in self._queue:
            if id(pending) in abandoned:
                pending.queue_span.end()
            else:
                kept.append(pending)
        self._queue = kept
        self._metrics.queue_depth.set(len(kept))

    async def _run(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                batch = await self._next_batch()
            except BaseException:
                self._slots.release()
                raise
            task = asyncio.create_task(self._process(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _next_batch(self) -> list[_Pending[T, R]]:
        while True:
            while not self._queue:
                self._has_items.clear()
                await self._has_items.wait()
            deadline = self._queue[0].enqueued_at + self.max_wait_s
            # Company is worth waiting for only when some is coming: another request
            # queued, or admitted and still reading its input.
            while (
                self._waiting_requests + self._admitted > 1
                and self._live_count() < self.max_batch_size
            ):
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    break
                self._has_items.clear()
                try:
                    await asyncio.wait_for(self._has_items.wait(), remaining)
                except TimeoutError:
                    break
            batch: list[_Pending[T, R]] = []
            while self._queue and len(batch) < self.max_batch_size:
                pending = self._queue.popleft()
                if not pending.future.done():
                    batch.append(pending)
                pending.queue_span.end()
            self._metrics.queue_depth.set(len(self._queue))
            if batch:
                return batch

    def _live_count(self) -> int:
        return sum(1 for p in self._queue if not p.future.done())

    async def _process(self, batch: list[_Pending[T, R]]) -> None:
        started = time.perf_counter()
        self._record_start([started - p.enqueued_at for p in batch])
        items = [p.item for p in batch]
        links = [trace.Link(p.queue_span.get_span_context()) for p in batch]
        span = self._tracer.start_span(
            "inference", links=links, attributes={"batch.size": len(batch)}
        )
        try:
            results = self._checked(await self._call(items), len(batch))
        except Exception as exc:
            logger.exception("inference failed for a batch of %d", len(batch))
            span.record_exception(exc)
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(exc)
        else:
            for p, result in zip(batch, results, strict=True):
                if not p.future.done():
                    p.future.set_result(result)
        finally:
            self._metrics.inference_latency.observe(time.perf_counter() - started)
            span.end()
            self._slots.release()

    def _run_inline(self, items: list[T]) -> list[R]:
        started = time.perf_counter()
        self._record_start([0.0] * len(items))
        with self._tracer.start_as_current_span("inference", attributes={"batch.size": len(items)}):
            try:
                results = self._checked(self._infer(items), len(items))  # type: ignore[arg-type]
            finally:
                self._metrics.inference_latency.observe(time.perf_counter() - started)
        return results

    def _record_start(self, waits: list[float]) -> None:
        """A batch starts: each item's time in the queue, and the batch's size."""
        for wait in waits:
            self._metrics.queue_wait.observe(wait)
        self._metrics.batch_size.observe(len(waits))

    async def _call(self, items: list[T]) -> Sequence[R]:
        if self._is_async:
            return await self._infer(items)  # type: ignore[misc]
        if self.inline:
            return self._infer(items)  # type: ignore[return-value]
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._infer, items)  # type: ignore[arg-type]

    @staticmethod
    def _checked(results: Sequence[R], expected: int) -> list[R]:
        """The model's results, one per item, or RuntimeError."""
        if len(results) != expected:
            raise RuntimeError(f"model returned {len(results)} results for {expected} items")
        return list(results)
