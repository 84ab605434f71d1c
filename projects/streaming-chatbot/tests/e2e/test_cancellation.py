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
    engine: str, gateway: str, request: pytest.FixtureRequest, timeout_s: float = 5
) -> tuple[float, float]:
    deadline = time.monotonic() + timeout_s
    while True:
        running, tokens = engine_numbers(engine, gateway, request)
        if running == 0 or time.monotonic() > deadline:
            return running, tokens
        time.sleep(0.05)


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
        started = time.monotonic()
        received = 0
        while received < 5:
            if next(lines).startswith("data: {"):
                received += 1
        first_chunks_s = time.monotonic() - started
        # vLLM publishes its gauges once per engine step, a beat behind the tokens: keep
        # reading while waiting for the engine to report the generation.
        deadline = time.monotonic() + 20
        running, tokens = engine_numbers(engine, engine_url, request)
        while running < 1 and time.monotonic() < deadline:
            next(lines)
            running, tokens = engine_numbers(engine, engine_url, request)
        assert running >= 1, (
            f"the generation should be running while we read it: the first chunks took "
            f"{first_chunks_s:.1f} s, and {tokens - tokens_before:.0f} tokens are generated"
        )
    # The connection is closed here, with ~1500 tokens still to generate.

    running, tokens_after_close = wait_until_idle(engine, engine_url, request)
    assert running == 0, "the engine is still generating for a client that left"
    time.sleep(1.0)
    _, tokens_later = engine_numbers(engine, engine_url, request)
    assert tokens_later == tokens_after_close, "tokens kept coming after the generation stopped"
    produced = tokens_later - tokens_before
    assert produced < LONG / 2, f"{produced} tokens generated for a client that read a few chunks"

    assert cancellations(engine_url) == cancelled_before + 1
    assert metric_value(httpx.get(engine_url + "/metrics").text, "llm_active_streams") == 0
