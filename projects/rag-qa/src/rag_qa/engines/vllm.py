"""The vLLM engine: a remote vLLM OpenAI-compatible server, the production path.

The gateway sends the token ids it already counted to vLLM's completions endpoint, so
what it checked against the context is exactly what vLLM runs, and always streams, so
time to first token is measured the same way for streaming and non-streaming clients.
Closing the stream closes the HTTP connection, and vLLM aborts the request.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx

from rag_qa.engines.base import (
    EngineEvent,
    Finished,
    GenerationRequest,
    TextDelta,
    UpstreamError,
    UpstreamRejected,
)
from rag_qa.errors import Overloaded, UpstreamUnavailable
from rag_qa.settings import Settings

logger = logging.getLogger(__name__)


class VllmEngine:
    name = "vllm"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.model = settings.vllm_model or settings.model_name
        self.concurrency = settings.vllm_concurrency
        self.kv_bytes_per_token = 0  # the server holds the cache, and its own budget for it
        headers = {}
        if settings.vllm_api_key is not None:
            headers["Authorization"] = f"Bearer {settings.vllm_api_key.get_secret_value()}"
        self._client = httpx.AsyncClient(
            base_url=settings.vllm_url,
            headers=headers,
            timeout=httpx.Timeout(
                connect=settings.upstream_connect_timeout_s,
                read=settings.stream_idle_timeout_s,
                write=settings.upstream_connect_timeout_s,
                pool=settings.upstream_connect_timeout_s,
            ),
            limits=httpx.Limits(
                max_connections=settings.max_concurrent_streams + 4,
                max_keepalive_connections=settings.max_concurrent_streams,
            ),
        )
        self._ready = False
        self._failure: str | None = None

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def failure(self) -> str | None:
        return self._failure

    async def start(self) -> None:
        """Waits until vLLM serves the model: it may start long after the gateway."""
        while True:
            served = await self._served_models()
            if served is not None:
                if self.model in served:
                    break
                self._failure = (
                    f"vLLM at {self.settings.vllm_url} serves {sorted(served)}, not {self.model!r}"
                )
                raise RuntimeError(self._failure)
            await asyncio.sleep(1.0)
        self._ready = True
        logger.info("vLLM engine ready", extra={"vllm_url": self.settings.vllm_url})

    async def _served_models(self) -> set[str] | None:
        try:
            response = await self._client.get("/v1/models")
            response.raise_for_status()
        except httpx.HTTPError as exc:
            logger.info("waiting for vLLM", extra={"reason": str(exc) or type(exc).__name__})
            return None
        return {entry["id"] for entry in response.json().get("data", [])}

    async def stop(self) -> None:
        self._ready = False
        await self._client.aclose()

    async def generate(self, request: GenerationRequest) -> AsyncIterator[EngineEvent]:
        params = request.params
        body: dict[str, Any] = {
            "model": self.model,
            "prompt": request.prompt_token_ids,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if params.seed is not None:
            body["seed"] = params.seed
        if params.stop:
            body["stop"] = list(params.stop)
        if params.ignore_eos:
            body["ignore_eos"] = True
        headers = {"X-Request-Id": request.request_id}
        reason: str | None = None
        usage: dict[str, int] = {}
        response: httpx.Response | None = None
        try:
            request_ = self._client.build_request(
                "POST", "/v1/completions", json=body, headers=headers
            )
            response = await self._client.send(request_, stream=True)
            if response.status_code != 200:
                raise await _upstream_failure(response)
            # Read to the end of the body, past [DONE]: a response closed early takes its
            # connection with it, and the next request would pay for a new one.
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    continue
                chunk = json.loads(data)
                if "error" in chunk:
                    raise UpstreamError(f"vLLM failed mid-stream: {chunk['error']}")
                for choice in chunk.get("choices") or ():
                    if text := choice.get("text"):
                        yield TextDelta(text)
                    reason = choice.get("finish_reason") or reason
                usage = chunk.get("usage") or usage
        except httpx.TimeoutException as exc:
            raise UpstreamUnavailable(
                f"vLLM at {self.settings.vllm_url} did not answer in time ({type(exc).__name__})"
            ) from exc
        except httpx.TransportError as exc:
            raise UpstreamUnavailable(
                f"vLLM at {self.settings.vllm_url} is unreachable: {exc!r}"
            ) from exc
        finally:
            if response is not None:
                # Closing the connection is what tells vLLM to abort the request; do it
                # even while this task is being cancelled.
                with anyio.CancelScope(shield=True):
                    await response.aclose()
        yield Finished(
            reason="length" if reason == "length" else "stop",
            prompt_tokens=usage.get("prompt_tokens", len(request.prompt_token_ids)),
            completion_tokens=usage.get("completion_tokens", 0),
        )


async def _upstream_failure(response: httpx.Response) -> Exception:
    detail = (await response.aread())[:1000].decode("utf-8", "replace")
    try:
        message = json.loads(detail).get("error", {}).get("message", detail)
    except (ValueError, AttributeError):
        message = detail
    if response.status_code in (429, 503):
        return Overloaded(f"vLLM is overloaded: {message}")
    if response.status_code == 400:
        # The gateway checks lengths itself; this is vLLM's own limit (a max_model_len set
        # lower than APP_MAX_CONTEXT_TOKENS, say), and the client's to act on.
        return UpstreamRejected(f"vLLM rejected the request: {message}")
    return UpstreamError(f"vLLM answered {response.status_code}: {message}")
