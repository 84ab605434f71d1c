"""Reading OpenAI-style streamed chat completions (server-sent events) under load.

`chat_stream` is a Contender `exchange`: it sends one request, reads the stream to its end
and returns when the first text arrived and how many tokens the answer had (the usage in
the last chunk, else the number of chunks with text). `chat_text` reads a whole streamed
answer back into its text, for the agreement check.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

import aiohttp
import httpx

from benchmarks.loadgen import RequestFailed, RequestSpec


async def chat_stream(client: aiohttp.ClientSession, spec: RequestSpec) -> Mapping[str, Any]:
    first_token: float | None = None
    chunks = 0
    usage: Mapping[str, Any] | None = None
    async with client.request(
        spec.method, spec.path, data=spec.content, headers=spec.headers
    ) as response:
        if response.status != 200:
            await response.read()
            raise RequestFailed(f"http_{response.status}")
        async for raw in response.content:  # one server-sent-events line at a time
            line = raw.decode()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            if "error" in chunk:
                raise RequestFailed("stream_error")
            for choice in chunk.get("choices") or ():
                if (choice.get("delta") or {}).get("content"):
                    chunks += 1
                    if first_token is None:
                        first_token = time.perf_counter()
            usage = chunk.get("usage") or usage
    if first_token is None:
        raise RequestFailed("no_text")
    tokens = int(usage["completion_tokens"]) if usage else chunks
    return {"first_token": first_token, "output_tokens": tokens, "chunks": chunks}


def _events(body: str) -> Iterator[dict[str, Any]]:
    for line in body.splitlines():
        if line.startswith("data:") and line[5:].strip() != "[DONE]":
            yield json.loads(line[5:])


def chat_text(response: httpx.Response) -> tuple[str, float]:
    """The streamed answer's text and its completion token count (as the "score")."""
    parts: list[str] = []
    tokens = 0.0
    for chunk in _events(response.text):
        if "error" in chunk:
            raise RuntimeError(f"the stream failed: {chunk['error']}")
        for choice in chunk.get("choices") or ():
            parts.append((choice.get("delta") or {}).get("content") or "")
        if chunk.get("usage"):
            tokens = float(chunk["usage"]["completion_tokens"])
    return "".join(parts), tokens
