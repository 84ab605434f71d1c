"""A stand-in for a failure no real vLLM produces on demand: an engine that stalls.

`StallingUpstream` answers vLLM's model list like a healthy server, then accepts each
completion request and never sends a byte back, the way an engine wedged on a GPU does.
Everything else in the tests talks to real parts.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator

from fastapi import FastAPI, Request

from tests.conftest import MODEL_NAME
from tests.live_server import serve


def stalling_upstream_app() -> FastAPI:
    app = FastAPI()

    @app.get("/v1/models")
    async def models() -> dict[str, object]:
        return {"object": "list", "data": [{"id": MODEL_NAME, "object": "model"}]}

    @app.post("/v1/completions")
    async def completions(request: Request) -> None:
        await request.body()
        # Never answers; returns once the gateway hangs up, so shutdown does not wait.
        while not await request.is_disconnected():  # noqa: ASYNC110 - polls the client
            await asyncio.sleep(0.05)

    return app


@contextlib.contextmanager
def stalling_upstream() -> Iterator[str]:
    with serve(stalling_upstream_app(), wait_ready=False) as url:
        yield url
