"""The memory budget's size, and the sampler that measures what work takes."""

from __future__ import annotations

import threading
import time

import pytest

from batch_video import admission
from batch_video.admission import PeakRSS, budget_bytes
from batch_video.settings import Settings
from tests.api_keys import SETTINGS

GIB = 2**30


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **{**SETTINGS, **values})  # type: ignore[arg-type]


def test_the_budget_is_a_share_of_what_the_model_and_its_working_memory_leave(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(admission, "rss_bytes", lambda: 1 * GIB)
    limited = settings(memory_limit_bytes=4 * GIB, request_memory_fraction=0.5)
    assert budget_bytes(limited) == int(1.5 * GIB)
    assert budget_bytes(limited, working_bytes=1 * GIB) == 1 * GIB
    # A model that needs more than the limit leaves nothing, not a negative budget.
    assert budget_bytes(limited, working_bytes=8 * GIB) == 0
    # A budget set outright is what it says.
    assert budget_bytes(settings(request_memory_bytes=123), working_bytes=GIB) == 123


def test_the_sampler_sees_memory_held_only_while_the_block_runs() -> None:
    held = threading.Event()

    def work() -> None:
        block = bytearray(96 * 2**20)  # zero-filled pages: resident once written
        for offset in range(0, len(block), 4096):
            block[offset] = 1
        held.set()
        time.sleep(0.05)
        del block

    with PeakRSS() as rss:
        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
    assert held.is_set()
    assert rss.over_baseline >= 64 * 2**20, rss.over_baseline
