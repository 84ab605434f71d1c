"""Several replicas on one real Redis: shared conversations and a shared rate limit."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from streaming_chatbot.app import create_app
from streaming_chatbot.settings import Settings
from tests.conftest import chat_body, skip_or_fail
from tests.e2e.test_conversations import say, start
from tests.live_server import free_port, serve

pytestmark = pytest.mark.redis


@contextlib.contextmanager
def redis_server(workdir: Path) -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        skip_or_fail("no redis-server (apt-get install redis-server)", "REQUIRE_REDIS")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(workdir),
        ],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while (
            subprocess.run(
                ["redis-cli", "-p", str(port), "ping"], capture_output=True, check=False
            ).stdout.strip()
            != b"PONG"
        ):
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="module")
def replicas(make_settings: Callable[..., Settings], redis_url: str) -> Iterator[tuple[str, str]]:
    settings = make_settings(redis_url=redis_url, rate_limit_rps=0.1, rate_limit_burst=6)
    with serve(create_app(settings)) as first, serve(create_app(settings)) as second:
        yield first, second


def test_a_conversation_started_on_one_replica_continues_on_another(
    replicas: tuple[str, str], auth_headers: dict[str, str]
) -> None:
    first, second = replicas
    cid = str(start(first, auth_headers)["id"])
    answer, first_usage = say(first, cid, auth_headers, "What is the capital of France?")
    assert "Paris" in answer
    history = httpx.get(f"{second}/v1/conversations/{cid}", headers=auth_headers).json()
    assert history["messages"][-1] == {"role": "assistant", "content": answer}
    _, second_usage = say(second, cid, auth_headers, "And of Italy?")
    assert second_usage["prompt_tokens"] > first_usage["total_tokens"]
    assert (
        len(httpx.get(f"{first}/v1/conversations/{cid}", headers=auth_headers).json()["messages"])
        == 5
    )
    assert httpx.delete(f"{second}/v1/conversations/{cid}", headers=auth_headers).status_code == 204
    assert httpx.get(f"{first}/v1/conversations/{cid}", headers=auth_headers).status_code == 404


def test_the_rate_limit_is_shared_by_the_replicas(
    make_settings: Callable[..., Settings], redis_url: str, auth_headers: dict[str, str]
) -> None:
    settings = make_settings(
        redis_url=redis_url, redis_prefix="limit-test", rate_limit_rps=0.2, rate_limit_burst=2
    )
    with serve(create_app(settings)) as first, serve(create_app(settings)) as second:
        body = chat_body("hi", max_tokens=1)
        statuses = [
            httpx.post(
                url + "/v1/chat/completions", json=body, headers=auth_headers, timeout=60
            ).status_code
            for url in (first, second, first, second)
        ]
        assert statuses == [200, 200, 429, 429]


def test_redis_going_away_gets_503_not_500(
    make_settings: Callable[..., Settings], tmp_path: Path, auth_headers: dict[str, str]
) -> None:
    with contextlib.ExitStack() as redis_running:
        url = redis_running.enter_context(redis_server(tmp_path))
        with serve(create_app(make_settings(redis_url=url))) as gateway:
            assert start(gateway, auth_headers)["id"]
            redis_running.close()
            started = time.monotonic()
            response = httpx.post(
                gateway + "/v1/conversations", json={}, headers=auth_headers, timeout=10
            )
            assert time.monotonic() - started < 3
            assert response.status_code == 503
            assert response.json()["error"]["code"] == "store_unavailable"
