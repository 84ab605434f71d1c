"""Admission: what a request will cost in memory, accounted before the work starts.

One budget per process holds the bytes that requests in flight may use at once. A request
with a body reserves its declared length before a byte of it is read (a streamed body, as
its bytes arrive), and a route that expands its input (images decoded to pixels, text to
tokens) reserves what the expansion will take before it starts. What does not fit is
answered 503 `overloaded` with Retry-After at once, so a burst is refused instead of
taking the process past its container's memory limit.

The budget is a share of what the memory limit leaves once the model is loaded and its
working memory set aside (what the model takes while it works that no request reserves,
one batch's activations, say): the limit is `APP_MEMORY_LIMIT_BYTES` (the chart sets it to
the container's limit), else the cgroup's, else the machine's memory.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import threading
from pathlib import Path

from batch_video.errors import Overloaded
from batch_video.observability import Metrics
from batch_video.settings import Settings

logger = logging.getLogger(__name__)

# A body is held twice while it is parsed: the bytes as read and what they decode to.
BODY_COPIES = 2
# After a burst that held this much, freed memory is handed back to the system.
TRIM_AFTER_BYTES = 64 * 1024 * 1024
_CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)


class MemoryBudget:
    """Bytes that requests in flight may hold; `reserve` takes some or raises Overloaded."""

    def __init__(self, limit_bytes: int, metrics: Metrics, *, retry_after_s: int = 1) -> None:
        self.limit_bytes = limit_bytes
        self.reserved_bytes = 0
        self.retry_after_s = retry_after_s
        self._metrics = metrics
        self._lock = threading.Lock()  # released from decoding threads too
        self._held_since_trim = 0
        metrics.memory_budget.set(limit_bytes)

    def resize(self, limit_bytes: int) -> None:
        self.limit_bytes = limit_bytes
        self._metrics.memory_budget.set(limit_bytes)

    def reserve(self, nbytes: int, what: str) -> Reservation:
        """A reservation of `nbytes` for `what` (named in the 503), or Overloaded."""
        reservation = Reservation(self)
        reservation.grow(nbytes, what)
        return reservation

    def _take(self, nbytes: int, what: str) -> None:
        with self._lock:
            if nbytes > 0 and self.reserved_bytes + nbytes > self.limit_bytes:
                self._metrics.memory_rejected.inc()
                raise Overloaded(
                    f"{what} needs {nbytes} bytes and requests in flight already hold "
                    f"{self.reserved_bytes} of this replica's {self.limit_bytes} byte budget; "
                    "retry later",
                    retry_after_s=self.retry_after_s,
                )
            self.reserved_bytes += nbytes
            self._held_since_trim = max(self._held_since_trim, self.reserved_bytes)
            self._metrics.memory_reserved.set(self.reserved_bytes)

    def _give_back(self, nbytes: int) -> None:
        with self._lock:
            self.reserved_bytes -= nbytes
            self._metrics.memory_reserved.set(self.reserved_bytes)
            trim = self.reserved_bytes == 0 and self._held_since_trim >= TRIM_AFTER_BYTES
            if trim:
                self._held_since_trim = 0
        if trim:
            release_free_memory()


class Reservation:
    """Bytes held for one request or one piece of its work, until `release`."""

    def __init__(self, budget: MemoryBudget) -> None:
        self._budget = budget
        self.nbytes = 0

    def grow(self, nbytes: int, what: str) -> None:
        self._budget._take(nbytes, what)
        self.nbytes += nbytes

    def release(self) -> None:
        """Gives everything back; a second call does nothing."""
        nbytes, self.nbytes = self.nbytes, 0
        if nbytes:
            self._budget._give_back(nbytes)


def budget_bytes(settings: Settings, working_bytes: int = 0) -> int:
    """The budget: set outright, or the settings' share of the limit above current RSS and
    the model's `working_bytes`."""
    if settings.request_memory_bytes is not None:
        return settings.request_memory_bytes
    limit = settings.memory_limit_bytes or memory_limit_bytes()
    free = limit - rss_bytes() - working_bytes
    return max(0, int(free * settings.request_memory_fraction))


def memory_limit_bytes() -> int:
    """The cgroup's memory limit when there is one, else the machine's memory."""
    for path in _CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 1 << 60:  # "max" or a huge number: no limit
            return int(text)
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def rss_bytes() -> int:
    """This process's resident memory."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """This process's resident memory at its highest while the block runs, sampled every
    few milliseconds from a thread of its own (a peak shorter than that can be missed)."""

    def __init__(self, interval_s: float = 0.002) -> None:
        self.peak = self.baseline = 0  # read as the block starts
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @property
    def over_baseline(self) -> int:
        return self.peak - self.baseline

    def __enter__(self) -> PeakRSS:
        self.peak = self.baseline = rss_bytes()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, rss_bytes())

    def _sample(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.peak = max(self.peak, rss_bytes())


def _load_trim() -> ctypes._CFuncPtr | None:
    name = ctypes.util.find_library("c")
    trim = getattr(ctypes.CDLL(name), "malloc_trim", None) if name else None
    if trim is not None:
        trim.argtypes = [ctypes.c_size_t]
    return trim


_malloc_trim = _load_trim()


def release_free_memory() -> None:
    """Hands memory freed by a burst back to the system (glibc keeps it in its arenas,
    where RSS would stay at the burst's peak); nothing to do on other C libraries."""
    if _malloc_trim is not None:
        _malloc_trim(0)
