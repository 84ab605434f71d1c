"""The chatbot's runtime: the LLM, conversation history and rate limits, started together."""

from __future__ import annotations

import math

from redis.asyncio import Redis

from streaming_chatbot.conversations import (
    ConversationStore,
    MemoryConversationStore,
    RedisConversationStore,
)
from streaming_chatbot.generation import LLM
from streaming_chatbot.limits import MemoryTokenBucket, RateLimited, RateLimiter, RedisTokenBucket
from streaming_chatbot.observability import Metrics
from streaming_chatbot.settings import Settings


class ChatRuntime:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.llm = LLM(settings, metrics)
        self.redis: Redis | None = None
        self.conversations: ConversationStore
        rate_limiter: RateLimiter | None = None
        if settings.redis_url:
            self.redis = Redis.from_url(
                settings.redis_url, socket_connect_timeout=2, socket_timeout=2
            )
            self.conversations = RedisConversationStore(
                self.redis, settings.redis_prefix, settings.conversation_ttl_s
            )
            if settings.rate_limit_rps > 0:
                rate_limiter = RedisTokenBucket(
                    self.redis,
                    settings.rate_limit_rps,
                    settings.rate_limit_burst,
                    settings.redis_prefix,
                )
        else:
            self.conversations = MemoryConversationStore(
                settings.conversation_ttl_s, settings.max_conversations
            )
            if settings.rate_limit_rps > 0:
                rate_limiter = MemoryTokenBucket(settings.rate_limit_rps, settings.rate_limit_burst)
        self.rate_limiter = rate_limiter
        self._failure: str | None = None

    @property
    def ready(self) -> bool:
        return self.llm.ready

    @property
    def failure(self) -> str | None:
        return self._failure or self.llm.failure

    async def start(self) -> None:
        if self.redis is not None:
            try:
                await self.redis.ping()
            except Exception as exc:
                self._failure = f"cannot reach Redis at {self.settings.redis_url}: {exc}"
                raise
        await self.llm.start()

    async def stop(self) -> None:
        await self.llm.stop()
        await self.conversations.close()
        if self.redis is not None:
            await self.redis.aclose()

    async def check_rate(self, client: str) -> None:
        if self.rate_limiter is None:
            return
        wait = await self.rate_limiter.wait_time(client)
        if wait > 0:
            self.metrics.llm_rejected.labels(reason="rate_limited").inc()
            raise RateLimited(
                f"rate limit of {self.settings.rate_limit_rps:g} requests/s exceeded",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
