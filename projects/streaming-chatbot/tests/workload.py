"""What the shared burst and drain tests (tests/e2e/test_burst_and_drain.py) send to a
service: each kind's `workload` fixture says what one request doing real work is, and how
to build a service that can take `capacity` of them at once."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from streaming_chatbot.admission import rss_bytes


@dataclass(frozen=True)
class Workload:
    # A new service, sized so that `capacity` requests fill it; keywords override settings.
    app: Callable[..., FastAPI]
    capacity: int  # requests it works on at once
    request: dict[str, Any]  # httpx.request arguments: method, url, and json or files
    prepare: Callable[[str], None] = field(default=lambda url: None)  # data it needs, by URL
    # Whether a burst of ten times `capacity` is refused in part. False only for a service
    # that keeps up with any burst (one that answers from memory in microseconds).
    refuses: bool = True


class PeakRSS:
    """Samples this process's resident memory (the server runs in it) every few ms."""

    def __init__(self) -> None:
        self.peak = self.baseline = rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakRSS:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, rss_bytes())
