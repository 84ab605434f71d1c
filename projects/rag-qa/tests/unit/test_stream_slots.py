"""Stream slots admit a stream only when it can start within its first-token deadline,
from stream durations measured as if the engine were full."""

from __future__ import annotations

import pytest

from rag_qa import generation
from rag_qa.generation import StreamSlot, StreamSlots
from rag_qa.observability import Metrics


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    clock = Clock()
    monkeypatch.setattr(generation.time, "monotonic", clock)
    return clock


def slots(*, concurrency: int = 2, timeout_s: float = 6.0, limit: int = 16) -> StreamSlots:
    return StreamSlots(limit, Metrics(), concurrency=concurrency, first_token_timeout_s=timeout_s)


def take(stream_slots: StreamSlots) -> StreamSlot:
    slot = stream_slots.try_acquire()
    assert slot is not None
    return slot


def test_a_stream_measured_alone_counts_as_long_as_on_a_full_engine(clock: Clock) -> None:
    stream_slots = slots(concurrency=2)
    alone = take(stream_slots)
    clock.now += 1.5
    alone.release(streamed_s=1.5)
    # Beside a second stream, on shared cores, it would have taken twice as long.
    assert stream_slots.stream_duration_s == pytest.approx(3.0)


def test_streams_measured_on_a_full_engine_count_as_they_ran(clock: Clock) -> None:
    stream_slots = slots(concurrency=2)
    first, second = take(stream_slots), take(stream_slots)
    clock.now += 3.0
    first.release(streamed_s=3.0)
    assert stream_slots.stream_duration_s == pytest.approx(3.0)
    second.release(streamed_s=3.0)
    assert stream_slots.stream_duration_s == pytest.approx(3.0)


def test_a_stream_that_would_wait_past_its_share_of_the_deadline_is_refused(
    clock: Clock,
) -> None:
    stream_slots = slots(concurrency=2, timeout_s=6.0)
    warm = take(stream_slots)
    clock.now += 2.0
    warm.release(streamed_s=2.0)  # 4 s on a full engine
    running = [take(stream_slots), take(stream_slots)]
    # The engine is full for 4 s more; half the 6 s deadline is 3 s: refused at once.
    assert stream_slots.expected_wait_s() == pytest.approx(4.0)
    assert stream_slots.try_acquire() is None
    assert stream_slots.retry_after_s() == 2
    # Later, one is nearly done: the next one would start in time.
    clock.now += 1.5
    assert stream_slots.expected_wait_s() == pytest.approx(2.5)
    queued = take(stream_slots)
    for slot in [*running, queued]:
        slot.release()
    assert stream_slots.active == 0


def test_until_a_stream_is_measured_one_round_beyond_the_engine_is_admitted(
    clock: Clock,
) -> None:
    stream_slots = slots(concurrency=2)
    taken = [take(stream_slots) for _ in range(4)]
    assert stream_slots.try_acquire() is None
    taken[0].release()  # unmeasured (it failed): the estimate stays unknown
    assert stream_slots.stream_duration_s is None
    assert stream_slots.try_acquire() is not None


def test_the_limit_holds_however_quick_streams_are(clock: Clock) -> None:
    stream_slots = slots(concurrency=4, limit=3)
    warm = take(stream_slots)
    clock.now += 0.01
    warm.release(streamed_s=0.01)
    for _ in range(3):
        take(stream_slots)
    assert stream_slots.try_acquire() is None
