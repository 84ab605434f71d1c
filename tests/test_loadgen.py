"""The load generator against a real HTTP server on 127.0.0.1 (aiohttp's own, in process):
answers are counted inside the window only, failures by kind, and a server-sent stream is
read to its end."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

aiohttp = pytest.importorskip("aiohttp")
from aiohttp import web  # noqa: E402

from benchmarks.loadgen import LoadResult, RequestSpec, closed_loop  # noqa: E402
from benchmarks.streaming import chat_stream  # noqa: E402

TOKENS = ["Hello", ",", " world"]


async def _ok(request: web.Request) -> web.Response:
    body = await request.json()
    return web.json_response({"echo": body["n"]})


async def _busy(request: web.Request) -> web.Response:
    await request.read()
    return web.json_response({"error": {"code": "overloaded"}}, status=503)


async def _stream(request: web.Request) -> web.StreamResponse:
    await request.read()
    response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
    await response.prepare(request)
    for token in TOKENS:
        chunk = {"choices": [{"delta": {"content": token}}]}
        await response.write(f"data: {json.dumps(chunk)}\n\n".encode())
        await asyncio.sleep(0.001)
    usage = {"choices": [], "usage": {"completion_tokens": 7}}
    await response.write(f"data: {json.dumps(usage)}\n\ndata: [DONE]\n\n".encode())
    await response.write_eof()
    return response


@asynccontextmanager
async def _server() -> AsyncIterator[str]:
    app = web.Application()
    app.add_routes([web.post("/ok", _ok), web.post("/busy", _busy), web.post("/v1/chat", _stream)])
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def _load(path: str, **options: Any) -> LoadResult:
    async def run() -> LoadResult:
        async with _server() as base_url:
            requests = [
                RequestSpec(
                    path, json.dumps({"n": n}).encode(), {"content-type": "application/json"}
                )
                for n in range(3)
            ]
            return await closed_loop(
                base_url, requests, concurrency=4, warmup_s=0.2, duration_s=0.6, **options
            )

    return asyncio.run(run())


def test_answers_are_counted_inside_the_window() -> None:
    result = _load("/ok")
    assert result.errors == 0
    assert len(result.latencies_s) > 20
    assert all(0 < latency < 0.6 for latency in result.latencies_s)
    # Answers of the warm-up are successes too, but not in the window's latencies.
    assert len(result.successes) > len(result.latencies_s)


def test_a_refusal_is_an_error_of_its_kind() -> None:
    result = _load("/busy")
    assert result.latencies_s == []
    assert result.errors > 0
    assert result.error_kinds == {"http_503": result.errors}


def test_a_refused_connection_is_an_error_and_does_not_spin() -> None:
    async def run() -> LoadResult:
        async with _server() as base_url:
            pass  # closed again: nothing listens on its port now
        spec = RequestSpec("/ok", b"{}")
        return await closed_loop(base_url, [spec], concurrency=2, warmup_s=0.1, duration_s=0.4)

    result = asyncio.run(run())
    assert result.errors > 0
    assert set(result.error_kinds) == {"ClientConnectorError"}
    assert result.errors < 2 * 0.4 / 0.05 + 4  # each failure waits 50 ms before the next


def test_a_stream_is_read_to_its_end() -> None:
    result = _load("/v1/chat", exchange=chat_stream)
    assert result.errors == 0
    assert result.successes
    for record in result.successes:
        assert record.extra["chunks"] == len(TOKENS)
        assert record.extra["output_tokens"] == 7  # the usage chunk, not the count
        assert record.sent < record.extra["first_token"] < record.finished
