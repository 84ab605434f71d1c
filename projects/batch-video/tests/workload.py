"""What the shared burst and drain tests (tests/e2e/test_burst_and_drain.py) send to a
service: each kind's `workload` fixture says what one request doing real work is, and how
to build a service that can take `capacity` of them at once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

# Where the shared tests take the service's memory peak from: the service's own sampler.
from batch_video.admission import PeakRSS as PeakRSS


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
