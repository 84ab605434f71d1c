"""The circuit breaker: opens after failures in a row, refuses, then one probe at a time."""

from __future__ import annotations

from ensemble.breaker import BreakerState, CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(
    failures: int = 3, reset_s: float = 10.0
) -> tuple[CircuitBreaker, Clock, list[BreakerState]]:
    clock, seen = Clock(), []
    breaker = CircuitBreaker(failures, reset_s, on_change=seen.append, clock=clock)
    return breaker, clock, seen


def test_failures_in_a_row_open_it_and_a_success_resets_the_count() -> None:
    breaker, _, _ = make(failures=3)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()
    breaker.record_failure()
    breaker.record_failure()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.allow()


def test_after_reset_one_probe_goes_through_and_its_success_closes_it() -> None:
    breaker, clock, seen = make(failures=1, reset_s=10)
    breaker.record_failure()
    clock.now += 9.5
    assert not breaker.allow()
    assert breaker.retry_after_s() == 1
    clock.now += 0.5
    assert breaker.allow()  # the probe
    assert not breaker.allow()  # only one at a time
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED
    assert breaker.allow()
    assert seen == [
        BreakerState.CLOSED,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]


def test_a_failed_probe_opens_it_again_for_a_full_reset() -> None:
    breaker, clock, _ = make(failures=5, reset_s=10)
    breaker.trip()
    clock.now += 10
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN
    assert breaker.retry_after_s() == 10


def test_a_probe_that_ends_with_no_outcome_frees_the_next_probe() -> None:
    breaker, clock, _ = make(failures=1, reset_s=1)
    breaker.trip()
    clock.now += 1
    assert breaker.allow()
    breaker.release()
    assert breaker.allow()
