"""A circuit breaker per member: stop calling a member that keeps failing, probe it back.

Closed, calls go through and failures in a row are counted; `failures` of them open it.
Open, every call is refused at once (the member is left out, or a required one fails the
request with Retry-After) until `reset_s` has passed; then it is half-open and one call,
the probe, goes through: its success closes the breaker, its failure opens it again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum


class BreakerState(IntEnum):
    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitBreaker:
    def __init__(
        self,
        failures: int,
        reset_s: float,
        *,
        on_change: Callable[[BreakerState], None] = lambda state: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.failures = failures
        self.reset_s = reset_s
        self._on_change = on_change
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._in_a_row = 0
        self._opened_at = 0.0
        self._probing = False
        on_change(self._state)

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() >= self._opened_at + self.reset_s:
            self._set(BreakerState.HALF_OPEN)
        return self._state

    def allow(self) -> bool:
        """Whether a call may go to the member now; in half-open, only the one probe."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def record_success(self) -> None:
        self._in_a_row = 0
        self._probing = False
        if self._state is not BreakerState.CLOSED:
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        self._in_a_row += 1
        if self._state is BreakerState.HALF_OPEN or self._in_a_row >= self.failures:
            self.trip()

    def release(self) -> None:
        """A call let through ended with neither outcome (cancelled): the probe is free."""
        self._probing = False

    def trip(self) -> None:
        """Opens the breaker now (a member that failed its warm-up starts so)."""
        self._probing = False
        self._opened_at = self._clock()
        self._set(BreakerState.OPEN)

    def retry_after_s(self) -> int:
        """Whole seconds until the breaker lets a probe through (at least 1)."""
        left = self._opened_at + self.reset_s - self._clock()
        return max(1, int(left + 0.999))

    def _set(self, state: BreakerState) -> None:
        self._state = state
        self._on_change(state)
