"""MicroBatcher semantics, driven with plain functions as the model."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from image_classification.batching import MicroBatcher
from image_classification.errors import InferenceTimeout, NotReady, Overloaded
from image_classification.observability import Metrics

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RecordingModel:
    """Doubles its inputs and records every batch it was called with."""

    def __init__(self, delay_s: float = 0.0, fail_on: object = None) -> None:
        self.delay_s = delay_s
        self.fail_on = fail_on
        self.batches: list[list[int]] = []
        self.lock = threading.Lock()
        self.called = threading.Event()

    def __call__(self, items: Sequence[int]) -> list[int]:
        with self.lock:
            self.batches.append(list(items))
        self.called.set()
        time.sleep(self.delay_s)
        if self.fail_on in items:
            raise ValueError(f"cannot handle {self.fail_on}")
        return [2 * item for item in items]


def make_batcher(model: RecordingModel, **options: object) -> MicroBatcher[int, int]:
    values: dict = {"max_batch_size": 8, "max_wait_s": 0.0, "max_queue_size": 64}
    values.update(options)
    return MicroBatcher(model, metrics=Metrics(), **values)


async def test_concurrent_submissions_share_model_calls() -> None:
    model = RecordingModel(delay_s=0.02)
    batcher = make_batcher(model, max_batch_size=8)
    await batcher.start()
    try:
        results = await asyncio.gather(*(batcher.submit([i], 5) for i in range(20)))
    finally:
        await batcher.stop()
    assert results == [[2 * i] for i in range(20)]
    assert max(len(b) for b in model.batches) > 1
    assert max(len(b) for b in model.batches) <= 8
    assert sorted(i for b in model.batches for i in b) == list(range(20))


async def test_a_lone_request_runs_at_once_without_waiting_for_company() -> None:
    model = RecordingModel()
    batcher = make_batcher(model, max_wait_s=2.0)
    await batcher.start()
    try:
        started = time.perf_counter()
        assert await batcher.submit([21], 5) == [42]
        elapsed = time.perf_counter() - started
    finally:
        await batcher.stop()
    assert elapsed < 1.0


async def test_a_partial_batch_waits_for_company_while_others_are_in_flight() -> None:
    model = RecordingModel()
    batcher = make_batcher(model, max_batch_size=8, max_wait_s=0.3)
    await batcher.start()

    async def late() -> list[int]:
        await asyncio.sleep(0.1)
        return await batcher.submit([3], 5)

    try:
        started = time.perf_counter()
        results = await asyncio.gather(batcher.submit([1], 5), batcher.submit([2], 5), late())
        elapsed = time.perf_counter() - started
    finally:
        await batcher.stop()
    assert results == [[2], [4], [6]]
    assert model.batches == [[1, 2, 3]]  # the late request joined the waiting batch
    assert 0.25 <= elapsed < 2.0


async def test_a_full_batch_does_not_wait_for_max_wait() -> None:
    model = RecordingModel()
    batcher = make_batcher(model, max_batch_size=4, max_wait_s=10.0)
    await batcher.start()
    try:
        started = time.perf_counter()
        assert await batcher.submit([1, 2, 3, 4], 5) == [2, 4, 6, 8]
        assert time.perf_counter() - started < 1.0
    finally:
        await batcher.stop()


async def test_a_request_that_does_not_fit_the_queue_is_refused_whole() -> None:
    model = RecordingModel(delay_s=0.2)
    batcher = make_batcher(model, max_batch_size=1, max_queue_size=3)
    await batcher.start()
    try:
        first = asyncio.create_task(batcher.submit([1], 5))
        await asyncio.sleep(0.05)  # the model is now busy with item 1
        queued = asyncio.create_task(batcher.submit([2, 3], 5))
        await asyncio.sleep(0)
        with pytest.raises(Overloaded) as refused:
            await batcher.submit([4, 5], 5)
        assert refused.value.headers["Retry-After"] == "1"
        assert batcher.queue_depth == 2
        assert await first == [2]
        assert await queued == [4, 6]
    finally:
        await batcher.stop()
    assert 4 not in [i for b in model.batches for i in b]


async def test_timed_out_items_never_reach_the_model() -> None:
    model = RecordingModel(delay_s=1.0)
    batcher = make_batcher(model, max_batch_size=1)
    await batcher.start()
    try:
        busy = asyncio.create_task(batcher.submit([1], 5))
        # [99] must expire while [1] holds the model: wait until it does, rather than a
        # fixed time that a loaded machine can overshoot.
        assert await asyncio.to_thread(model.called.wait, 5)
        with pytest.raises(InferenceTimeout):
            await batcher.submit([99], 0.05)
        assert await busy == [2]
        assert await batcher.submit([3], 5) == [6]
    finally:
        await batcher.stop()
    assert [i for b in model.batches for i in b] == [1, 3]


async def test_timed_out_items_leave_the_queue_at_once() -> None:
    model = RecordingModel(delay_s=1.0)
    batcher = make_batcher(model, max_batch_size=1, max_queue_size=2)
    await batcher.start()
    try:
        busy = asyncio.create_task(batcher.submit([1], 5))
        assert await asyncio.to_thread(model.called.wait, 5)
        with pytest.raises(InferenceTimeout):
            await batcher.submit([7, 8], 0.05)
        # Behind the busy model the expired items would fill the queue: they are gone, and
        # the places they held take live items.
        assert batcher.queue_depth == 0
        assert await batcher.submit([2, 3], 5) == [4, 6]
        assert await busy == [2]
    finally:
        await batcher.stop()


async def test_an_inline_model_runs_on_the_event_loop_thread() -> None:
    model = RecordingModel()
    threads: list[int] = []

    def infer(items: Sequence[int]) -> list[int]:
        threads.append(threading.get_ident())
        return model(items)

    metrics = Metrics()
    batcher = MicroBatcher(
        infer, max_batch_size=8, max_wait_s=0.0, max_queue_size=64, metrics=metrics, inline=True
    )
    await batcher.start()
    try:
        assert await batcher.submit([1, 2], 5) == [2, 4]
        assert await asyncio.gather(*(batcher.submit([i], 5) for i in range(4))) == [
            [0], [2], [4], [6]
        ]  # fmt: skip
    finally:
        await batcher.stop()
    assert set(threads) == {threading.get_ident()}
    assert sum(len(b) for b in model.batches) == 6


@pytest.mark.parametrize("inline", [False, True])
async def test_a_lone_request_waits_for_one_admitted_behind_it_and_they_share_a_batch(
    inline: bool,
) -> None:
    model = RecordingModel()
    batcher = make_batcher(model, max_wait_s=0.5, inline=inline)
    await batcher.start()
    try:
        coming = batcher.admit()  # a second request, still reading its input
        first = asyncio.ensure_future(batcher.submit([1], 10))
        await asyncio.sleep(0.05)
        assert not first.done(), "the first request ran without the one on its way"
        assert await batcher.submit([2], 10, coming) == [4]
        assert await first == [2]
    finally:
        await batcher.stop()
    assert model.batches == [[1, 2]]


async def test_company_that_never_comes_costs_at_most_the_wait() -> None:
    model = RecordingModel()
    batcher = make_batcher(model, max_wait_s=0.05, inline=True)
    await batcher.start()
    try:
        with batcher.admit():  # admitted, and never submits
            started = time.perf_counter()
            assert await batcher.submit([3], 10) == [6]
            elapsed = time.perf_counter() - started
    finally:
        await batcher.stop()
    assert 0.04 < elapsed < 1.0
    assert model.batches == [[3]]


async def test_a_failing_batch_fails_its_callers_and_the_batcher_recovers() -> None:
    model = RecordingModel(fail_on=13)
    batcher = make_batcher(model)
    await batcher.start()
    try:
        with pytest.raises(ValueError, match="cannot handle 13"):
            await batcher.submit([13], 5)
        assert await batcher.submit([5], 5) == [10]
    finally:
        await batcher.stop()


async def test_a_sync_model_runs_batches_on_several_threads_at_once() -> None:
    active = 0
    peak = 0
    lock = threading.Lock()

    def model(items: Sequence[int]) -> list[int]:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.05)
        with lock:
            active -= 1
        return [item * 10 for item in items]

    batcher = MicroBatcher(
        model,
        max_batch_size=2,
        max_wait_s=0.0,
        max_queue_size=64,
        metrics=Metrics(),
        max_concurrent_batches=2,
    )
    await batcher.start()
    try:
        results = await asyncio.gather(*(batcher.submit([i], 5) for i in range(8)))
    finally:
        await batcher.stop()
    assert results == [[i * 10] for i in range(8)]
    assert peak == 2


async def test_an_async_model_is_awaited_with_batches_in_flight_together() -> None:
    in_flight = 0
    peak = 0

    async def remote_model(items: Sequence[int]) -> list[int]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.05)
        in_flight -= 1
        return [item + 1 for item in items]

    batcher = MicroBatcher(
        remote_model,
        max_batch_size=2,
        max_wait_s=0.0,
        max_queue_size=64,
        metrics=Metrics(),
        max_concurrent_batches=3,
    )
    await batcher.start()
    try:
        results = await asyncio.gather(*(batcher.submit([i], 5) for i in range(12)))
    finally:
        await batcher.stop()
    assert results == [[i + 1] for i in range(12)]
    assert peak == 3


async def test_submitting_before_start_or_after_stop_is_not_ready() -> None:
    batcher = make_batcher(RecordingModel())
    with pytest.raises(NotReady):
        await batcher.submit([1], 1)
    await batcher.start()
    await batcher.stop()
    with pytest.raises(NotReady):
        await batcher.submit([1], 1)
