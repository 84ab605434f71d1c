"""A stand-in for a slow optional member, for the `ours-slow-member` contender.

No real model is slow on demand, so this one is written to be: every call sleeps ten times
the deadline the suite gives it (50 ms), then answers label 0 for every input. The service
loads it through its `python` runtime, as it would a user's own model:

    - {name: slow, runtime: python, factory: "benchmarks.ensemble.slow_member:slow",
       weight: 1, deadline_ms: 50, required: false}

The sleep holds no lock and uses no CPU, so the other members keep both cores.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from ensemble.config import MemberSpec

SLEEP_S = 0.5
CLASSES = 10  # the demo ensemble's labels, the digits


class SlowModel:
    """Stand-in for a member that always answers late (a model on an overloaded host):
    each call sleeps SLEEP_S, then gives label 0 for every input."""

    def __init__(self, spec: MemberSpec) -> None:
        self.spec = spec

    def predict(self, batch: np.ndarray) -> np.ndarray:
        time.sleep(SLEEP_S)
        logits = np.zeros((len(batch), CLASSES), dtype=np.float32)
        logits[:, 0] = 1.0
        return logits


def slow(spec: MemberSpec) -> SlowModel:
    return SlowModel(spec)
