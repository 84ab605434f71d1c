"""Limits and failures: every one gets its status code and a JSON error, and nothing hangs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from streaming_chatbot.app import create_app
from streaming_chatbot.limits import MemoryTokenBucket
from streaming_chatbot.settings import Settings
from tests.conftest import MODEL_NAME, chat_body
from tests.live_server import serve
from tests.upstreams import stalling_upstream


def error_code(response: httpx.Response) -> str:
    assert response.headers["content-type"].startswith("application/json"), response.text
    return str(response.json()["error"]["code"])


TEXT_PART_SURROGATE = {"type": "text", "text": "\udfff"}


@pytest.mark.parametrize(
    "body",
    [
        {"model": MODEL_NAME},
        {"model": MODEL_NAME, "messages": []},
        {"model": MODEL_NAME, "messages": [{"role": "robot", "content": "hi"}]},
        {"model": MODEL_NAME, "messages": [{"role": "user"}]},
        {"model": MODEL_NAME, "messages": [{"role": "user", "content": 42}]},
        {"model": MODEL_NAME, "messages": [{"role": "user", "content": [{"type": "image"}]}]},
        {"model": MODEL_NAME, "messages": "hello"},
        {**chat_body("hi"), "temperature": 3},
        {**chat_body("hi"), "top_p": 0},
        {**chat_body("hi"), "max_tokens": 0},
        {**chat_body("hi"), "n": 2},
        {**chat_body("hi"), "stop": [""]},
        {**chat_body("hi"), "stop": ["a", "b", "c", "d", "e"]},
        {**chat_body("hi"), "seed": 2**64},
        {**chat_body("hi"), "seed": -(2**63) - 1},
        chat_body("\ud800 a lone surrogate"),
        {**chat_body("hi"), "messages": [{"role": "user", "content": [TEXT_PART_SURROGATE]}]},
        {**chat_body("hi"), "stop": ["\ud800"]},
    ],
    ids=[
        "no-messages",
        "empty-messages",
        "unknown-role",
        "no-content",
        "content-not-text",
        "non-text-part",
        "messages-not-a-list",
        "temperature",
        "top-p",
        "max-tokens",
        "n",
        "empty-stop",
        "too-many-stops",
        "seed-above-int64",
        "seed-below-int64",
        "lone-surrogate",
        "lone-surrogate-in-a-part",
        "lone-surrogate-in-a-stop",
    ],
)
def test_malformed_requests_get_422(
    base_url: str, auth_headers: dict[str, str], body: dict[str, object]
) -> None:
    # Encoded here: httpx's own JSON encoder refuses the lone surrogates a client can send.
    response = httpx.post(
        base_url + "/v1/chat/completions",
        content=json.dumps(body).encode(),
        headers={**auth_headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert error_code(response) == "invalid_request"


def test_a_body_that_is_not_json_gets_422(base_url: str, auth_headers: dict[str, str]) -> None:
    response = httpx.post(
        base_url + "/v1/chat/completions",
        content=b"{not json",
        headers={**auth_headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 422
    assert error_code(response) == "invalid_request"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("tools", [{"type": "function", "function": {"name": "f", "parameters": {}}}]),
        ("tool_choice", "required"),
        ("functions", [{"name": "f", "parameters": {}}]),
        ("response_format", {"type": "json_object"}),
        ("logprobs", True),
        ("frequency_penalty", 0.5),
        ("presence_penalty", -1),
        ("logit_bias", {"42": 10}),
    ],
)
def test_fields_that_would_change_the_answer_are_refused_by_name(
    base_url: str, auth_headers: dict[str, str], field: str, value: object
) -> None:
    body = {**chat_body("hi", max_tokens=1), field: value}
    response = httpx.post(base_url + "/v1/chat/completions", json=body, headers=auth_headers)
    assert response.status_code == 400
    assert error_code(response) == "unsupported_field"
    assert field in response.json()["error"]["message"]


def test_fields_that_ask_for_nothing_are_accepted(
    base_url: str, auth_headers: dict[str, str]
) -> None:
    no_ops = {"response_format": {"type": "text"}, "frequency_penalty": 0, "logprobs": False}
    body = {**chat_body("hi", max_tokens=1), **no_ops, "user": "someone", "tools": []}
    response = httpx.post(
        base_url + "/v1/chat/completions", json=body, headers=auth_headers, timeout=60
    )
    assert response.status_code == 200, response.text


def test_an_unknown_model_gets_404(base_url: str, auth_headers: dict[str, str]) -> None:
    body = {**chat_body("hi"), "model": "gpt-17"}
    response = httpx.post(base_url + "/v1/chat/completions", json=body, headers=auth_headers)
    assert response.status_code == 404
    assert error_code(response) == "model_not_found"
    assert MODEL_NAME in response.json()["error"]["message"]


@pytest.fixture(scope="module")
def small_context_url(make_settings: Callable[..., Settings]) -> Iterator[str]:
    with serve(create_app(make_settings(max_context_tokens=64))) as url:
        yield url


def test_a_prompt_longer_than_the_context_gets_400_with_counts(
    small_context_url: str, auth_headers: dict[str, str]
) -> None:
    body = chat_body("tell me about the sea " * 40, stream=True)
    response = httpx.post(
        small_context_url + "/v1/chat/completions", json=body, headers=auth_headers
    )
    assert response.status_code == 400
    assert error_code(response) == "context_length_exceeded"
    details = response.json()["error"]["details"]
    assert details["prompt_tokens"] > 64
    assert details["max_context_tokens"] == 64
    assert str(details["prompt_tokens"]) in response.json()["error"]["message"]


def test_max_tokens_past_the_context_gets_400(
    small_context_url: str, auth_headers: dict[str, str]
) -> None:
    body = chat_body("hi", max_tokens=60)
    response = httpx.post(
        small_context_url + "/v1/chat/completions", json=body, headers=auth_headers
    )
    assert response.status_code == 400
    details = response.json()["error"]["details"]
    assert details["max_tokens"] == 60
    assert details["prompt_tokens"] + 60 > 64


def test_streams_beyond_the_replica_limit_get_429_with_retry_after(
    make_settings: Callable[..., Settings], auth_headers: dict[str, str]
) -> None:
    long_body = chat_body("Write a long story.", max_tokens=400, ignore_eos=True, stream=True)
    with serve(create_app(make_settings(max_concurrent_streams=1))) as url:
        with httpx.stream(
            "POST", url + "/v1/chat/completions", json=long_body, headers=auth_headers, timeout=60
        ) as first:
            assert first.status_code == 200
            lines = first.iter_lines()  # kept alive: dropping it would close the stream
            next(lines)  # the stream is open and holds the only slot
            second = httpx.post(
                url + "/v1/chat/completions",
                json=chat_body("hi", max_tokens=2),
                headers=auth_headers,
            )
            assert second.status_code == 429
            assert error_code(second) == "too_many_streams"
            assert int(second.headers["Retry-After"]) >= 1
        # The slot comes back when the first client leaves.
        deadline = time.monotonic() + 5
        while True:
            third = httpx.post(
                url + "/v1/chat/completions",
                json=chat_body("hi", max_tokens=2),
                headers=auth_headers,
                timeout=60,
            )
            if third.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert third.status_code == 200


def test_streams_that_could_not_start_in_time_get_429_at_once_not_504_later(
    make_settings: Callable[..., Settings], auth_headers: dict[str, str]
) -> None:
    """The engine decodes two at a time and a stream takes about a second or more: of
    twelve at once, those that would wait past the first-token deadline are refused at
    once; every admitted one starts in time."""
    settings = make_settings(
        embedded_concurrency=2,
        max_concurrent_streams=16,
        first_token_timeout_s=4.0,
        rate_limit_rps=0,
    )
    body = chat_body("Write a long story.", max_tokens=32, ignore_eos=True, temperature=0)
    url_path = "/v1/chat/completions"
    with serve(create_app(settings)) as url:

        async def burst(streams: int) -> list[tuple[int, float, httpx.Response]]:
            async with httpx.AsyncClient(base_url=url, headers=auth_headers, timeout=60) as http:

                async def one() -> tuple[int, float, httpx.Response]:
                    started = time.perf_counter()
                    response = await http.post(url_path, json=body)
                    return response.status_code, time.perf_counter() - started, response

                return await asyncio.gather(*(one() for _ in range(streams)))

        # Two streams side by side, as the engine runs them: how long a stream takes.
        assert [status for status, _, _ in asyncio.run(burst(2))] == [200, 200]
        results = asyncio.run(burst(12))
    statuses = [status for status, _, _ in results]
    assert set(statuses) <= {200, 429}, statuses
    assert statuses.count(200) >= 2, statuses
    assert statuses.count(429) >= 1, statuses
    for status, elapsed, response in results:
        if status == 429:
            assert error_code(response) == "too_many_streams"
            assert int(response.headers["Retry-After"]) >= 1
            assert elapsed < 1.0, elapsed


def test_the_rate_limit_answers_429_with_retry_after(
    make_settings: Callable[..., Settings], auth_headers: dict[str, str]
) -> None:
    settings = make_settings(rate_limit_rps=0.2, rate_limit_burst=2)
    with serve(create_app(settings)) as url:
        body = chat_body("hi", max_tokens=1)
        statuses = [
            httpx.post(url + "/v1/chat/completions", json=body, headers=auth_headers, timeout=60)
            for _ in range(3)
        ]
        assert [r.status_code for r in statuses] == [200, 200, 429]
        assert error_code(statuses[2]) == "rate_limited"
        assert 1 <= int(statuses[2].headers["Retry-After"]) <= 5
        metrics = httpx.get(url + "/metrics").text
        assert 'llm_rejected_total{reason="rate_limited"} 1.0' in metrics


def test_a_key_nobody_checked_does_not_buy_a_bucket_of_its_own(
    make_settings: Callable[..., Settings],
) -> None:
    # With API keys off, X-API-Key is whatever the client says: the limit keys on the address.
    settings = make_settings(rate_limit_rps=0.2, rate_limit_burst=2)
    with serve(create_app(settings)) as url:
        body = chat_body("hi", max_tokens=1)
        statuses = [
            httpx.post(
                url + "/v1/chat/completions",
                json=body,
                headers={"X-API-Key": f"made-up-{attempt}"},
                timeout=60,
            ).status_code
            for attempt in range(3)
        ]
        assert statuses == [200, 200, 429]


def test_token_buckets_are_per_client_and_refill() -> None:
    bucket = MemoryTokenBucket(rate=10.0, burst=2)
    take = lambda key: asyncio.run(bucket.wait_time(key))  # noqa: E731
    assert [take("a"), take("a")] == [0.0, 0.0]
    assert 0 < take("a") <= 0.1
    assert take("b") == 0.0
    time.sleep(0.15)
    assert take("a") == 0.0


def test_a_stalled_engine_gets_504_after_the_first_token_timeout(
    make_settings: Callable[..., Settings], auth_headers: dict[str, str]
) -> None:
    with stalling_upstream() as upstream:
        settings = make_settings(engine="vllm", vllm_url=upstream, first_token_timeout_s=1.0)
        with serve(create_app(settings)) as url:
            for stream in (False, True):
                started = time.monotonic()
                response = httpx.post(
                    url + "/v1/chat/completions",
                    json=chat_body("hi", stream=stream),
                    headers=auth_headers,
                    timeout=10,
                )
                elapsed = time.monotonic() - started
                assert response.status_code == 504
                assert error_code(response) == "first_token_timeout"
                assert 1.0 <= elapsed < 3.0
            metrics = httpx.get(url + "/metrics").text
            assert 'llm_cancellations_total{reason="timeout"} 2.0' in metrics
            assert "llm_active_streams 0.0" in metrics


def test_an_engine_that_went_away_gets_503_within_two_seconds(
    make_settings: Callable[..., Settings], auth_headers: dict[str, str]
) -> None:
    with contextlib.ExitStack() as upstream_running:
        upstream = upstream_running.enter_context(stalling_upstream())
        settings = make_settings(engine="vllm", vllm_url=upstream)
        with serve(create_app(settings)) as url:
            upstream_running.close()  # the engine goes away under a ready gateway
            for stream in (False, True):
                started = time.monotonic()
                response = httpx.post(
                    url + "/v1/chat/completions",
                    json=chat_body("hi", stream=stream),
                    headers=auth_headers,
                    timeout=10,
                )
                assert time.monotonic() - started < 2.0
                assert response.status_code == 503
                assert error_code(response) == "upstream_unavailable"
                assert response.headers["Retry-After"] == "1"


@pytest.mark.vllm
def test_a_request_vllm_refuses_gets_its_400(
    make_settings: Callable[..., Settings],
    auth_headers: dict[str, str],
    request: pytest.FixtureRequest,
) -> None:
    # The gateway believes in a longer context than the real vLLM serves (2048 tokens).
    vllm_url = request.getfixturevalue("vllm_url")
    settings = make_settings(engine="vllm", vllm_url=vllm_url, max_context_tokens=8192)
    with serve(create_app(settings)) as url:
        body = chat_body("tell me about the sea " * 600, max_tokens=16)
        response = httpx.post(
            url + "/v1/chat/completions", json=body, headers=auth_headers, timeout=60
        )
        assert response.status_code == 400
        assert error_code(response) == "upstream_rejected"
        assert "maximum context length" in response.json()["error"]["message"]
