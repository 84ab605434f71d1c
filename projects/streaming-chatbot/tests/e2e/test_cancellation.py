"""A client that leaves mid-stream stops the generation in the engine itself.

Shown through the engine's own numbers: the embedded engine's running-generation gauge
and decoded-token counter, and vLLM's `vllm:num_requests_running` and
`vllm:generation_tokens_total` on its /metrics.
"""

from __future__ import annotations

import time

import httpx
import pytest

from tests.conftest import chat_body
from tests.metrics import metric_samples, metric_value

LONG = 1500  # tokens asked for; far more than are read before hanging up


def engine_numbers(
    engine: str, gateway: str, request: pytest.FixtureRequest
) -> tuple[float, float]:
    """(generations running, tokens generated so far) as the engine itself reports them."""
    if engine == "vllm":
        text = httpx.get(request.getfixturevalue("vllm_url") + "/metrics").text
        return (
            sum_samples(text, "vllm:num_requests_running"),
            sum_samples(text, "vllm:generation_tokens"),
        )
    text = httpx.get(gateway + "/metrics").text
    return metric_value(text, "llm_engine_running"), metric_value(
        text, "llm_engine_generated_tokens"
    )


def sum_samples(text: str, name: str, **labels: str) -> float:
    return sum(value for _, value in metric_samples(text, name, **labels))


def cancellations(gateway: str) -> float:
    text = httpx.get(gateway + "/metrics").text
    return sum_samples(text, "llm_cancellations", reason="client_disconnect")


def wait_until_idle(
    engine: str,
    gateway: str,
    request: pytest.FixtureRequest,
    steady_s: float = 1.5,
    timeout_s: float = 30,
) -> tuple[float, float]:
    """(running, tokens) once the engine runs nothing and its token count has held still
    for `steady_s`: vLLM publishes its numbers a beat behind its steps, so a gauge at 0
    alone can still be one step late. Gives up after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    running, tokens = engine_numbers(engine, gateway, request)
    steady_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.1)
        now_running, now_tokens = engine_numbers(engine, gateway, request)
        if now_running != running or now_tokens != tokens:
            running, tokens = now_running, now_tokens
            steady_since = time.monotonic()
        elif running == 0 and time.monotonic() - steady_since >= steady_s:
            break
    return running, tokens


def test_disconnect_mid_stream_stops_generation_in_the_engine(
    engine: str, engine_url: str, auth_headers: dict[str, str], request: pytest.FixtureRequest
) -> None:
    _, tokens_before = wait_until_idle(engine, engine_url, request)
    cancelled_before = cancellations(engine_url)

    body = chat_body(
        "Write a very long story about the sea.", max_tokens=LONG, ignore_eos=True, stream=True
    )
    with httpx.stream(
        "POST", engine_url + "/v1/chat/completions", json=body, headers=auth_headers, timeout=60
    ) as response:
        assert response.status_code == 200
        # Held in a variable: a dropped line iterator would close the connection early.
        lines = response.iter_lines()
        received = 0
        while received < 5:
            if next(lines).startswith("data: {"):
                received += 1
    # The connection is closed here, as soon as the first chunks are read: the engine
    # could otherwise finish the whole generation into socket buffers before the hang-up.

    running, tokens_after = wait_until_idle(engine, engine_url, request)
    assert running == 0, "the engine is still generating for a client that left"
    produced = tokens_after - tokens_before
    assert produced > 0, "the engine reports no tokens: the generation never ran in it"
    assert produced < LONG / 2, f"{produced} tokens generated for a client that read a few chunks"

    assert cancellations(engine_url) == cancelled_before + 1
    assert metric_value(httpx.get(engine_url + "/metrics").text, "llm_active_streams") == 0
