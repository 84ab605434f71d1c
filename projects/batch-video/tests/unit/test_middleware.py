"""Admission of a body: 413 over the size limit and 503 over the memory budget, declared
or streamed, whoever reads it; answered so that a client still sending reads it."""

from __future__ import annotations

import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from batch_video.admission import BODY_COPIES, MemoryBudget
from batch_video.errors import install_error_handlers
from batch_video.middleware import AdmissionMiddleware
from batch_video.observability import Metrics
from tests.live_server import serve

LIMIT = 1024
BUDGET = 16 * LIMIT


class Body(BaseModel):
    text: str


def app_with_limit(limit: int = LIMIT, budget: int = BUDGET) -> FastAPI:
    """A route whose body FastAPI itself parses, behind the service's admission."""
    app = FastAPI()
    install_error_handlers(app)
    app.state.budget = MemoryBudget(budget, Metrics())
    app.state.calls = 0

    @app.post("/echo")
    async def echo(body: Body) -> dict[str, int]:
        app.state.calls += 1
        return {"length": len(body.text), "reserved": app.state.budget.reserved_bytes}

    @app.get("/readyz")
    async def readyz() -> dict[str, str]:
        return {"status": "ready"}

    app.add_middleware(AdmissionMiddleware, max_bytes=limit, budget=app.state.budget)
    return app


@pytest.fixture
def app() -> FastAPI:
    return app_with_limit()


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as http:
        yield http


def chunks(total: int) -> Iterator[bytes]:
    """A JSON body sent in pieces with no Content-Length (chunked transfer)."""
    yield b'{"text": "'
    for _ in range(total // 256):
        yield b"x" * 256
    yield b'"}'


def test_a_body_within_the_limit_is_served(client: TestClient) -> None:
    response = client.post("/echo", json={"text": "x" * 100})
    assert response.status_code == 200
    assert response.json()["length"] == 100


def test_a_declared_body_over_the_limit_is_413(client: TestClient) -> None:
    response = client.post("/echo", json={"text": "x" * (2 * LIMIT)})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_streamed_body_over_the_limit_is_413_not_the_parsers_400(
    client: TestClient,
) -> None:
    response = client.post(
        "/echo", content=chunks(4 * LIMIT), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_a_body_holds_its_reservation_until_the_response_and_then_gives_it_back(
    app: FastAPI, client: TestClient
) -> None:
    response = client.post("/echo", json={"text": "x" * 100})
    body_bytes = int(response.request.headers["content-length"])
    assert response.json()["reserved"] == body_bytes * BODY_COPIES
    assert app.state.budget.reserved_bytes == 0


def test_a_declared_body_the_budget_cannot_hold_is_503_before_it_is_read(
    app: FastAPI, client: TestClient
) -> None:
    app.state.budget.reserve(BUDGET - LIMIT, "requests in flight")
    response = client.post("/echo", json={"text": "x" * 600})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "overloaded"
    assert int(response.headers["retry-after"]) >= 1
    assert app.state.calls == 0


def test_a_streamed_body_the_budget_cannot_hold_is_503(app: FastAPI, client: TestClient) -> None:
    app.state.budget.reserve(BUDGET - LIMIT, "requests in flight")
    response = client.post(
        "/echo", content=chunks(LIMIT - 64), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "overloaded"
    assert app.state.budget.reserved_bytes == BUDGET - LIMIT  # the refused body gave its back


def test_a_client_that_sends_its_whole_body_before_reading_reads_the_413() -> None:
    """urllib writes the whole body, then reads: closing on it would be a reset, not a 413."""
    limit = 1024 * 1024
    with serve(app_with_limit(limit, budget=64 * limit)) as url:
        request = urllib.request.Request(
            f"{url}/echo",
            data=b"x" * (25 * limit),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 413
    assert b"payload_too_large" in refused.value.read()


def test_a_huge_declared_body_is_refused_at_once_without_sending_it() -> None:
    with serve(app_with_limit()) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=5) as conn:
            started = time.perf_counter()
            conn.sendall(
                b"POST /echo HTTP/1.1\r\nHost: test\r\nContent-Type: application/json\r\n"
                b"Content-Length: 200000000\r\nExpect: 100-continue\r\n\r\n"
            )
            answer = b""
            while b"payload_too_large" not in answer and (chunk := conn.recv(65536)):
                answer += chunk
            elapsed = time.perf_counter() - started
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"payload_too_large" in answer
    assert elapsed < 1.0
