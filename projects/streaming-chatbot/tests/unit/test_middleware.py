"""The body-size limit: 413 for a declared or a streamed body over it, whoever reads it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import BaseModel

from streaming_chatbot.errors import install_error_handlers
from streaming_chatbot.middleware import BodySizeLimitMiddleware

LIMIT = 1024


class Body(BaseModel):
    text: str


def app_with_limit() -> FastAPI:
    """A route whose body FastAPI itself parses, behind the service's limit."""
    app = FastAPI()
    install_error_handlers(app)

    @app.post("/echo")
    async def echo(body: Body) -> dict[str, int]:
        return {"length": len(body.text)}

    app.add_middleware(BodySizeLimitMiddleware, max_bytes=LIMIT)
    return app


@pytest.fixture
def client() -> Iterator[TestClient]:
    with TestClient(app_with_limit()) as http:
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
    assert response.json() == {"length": 100}


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
