"""The chatbot's runtime: the LLM, conversation history and rate limits, started together."""

from __future__ import annotations

from redis.asyncio import Redis

from streaming_chatbot.conversations import (
    ConversationStore,
    MemoryConversationStore,
    RedisConversationStore,
)
from streaming_chatbot.generation import LLM, ChatMessage
from streaming_chatbot.limits import ClientRateLimit
from streaming_chatbot.observability import Metrics
from streaming_chatbot.openai_api import ChatTurn
from streaming_chatbot.settings import Settings


class ChatRuntime:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.llm = LLM(settings, metrics)
        self.redis: Redis | None = None
        self.conversations: ConversationStore
        if settings.redis_url:
            self.redis = Redis.from_url(
                settings.redis_url, socket_connect_timeout=2, socket_timeout=2
            )
            self.conversations = RedisConversationStore(
                self.redis, settings.redis_prefix, settings.conversation_ttl_s
            )
        else:
            self.conversations = MemoryConversationStore(
                settings.conversation_ttl_s, settings.max_conversations
            )
        self.rate_limit = ClientRateLimit(settings, metrics, self.redis)
        self._failure: str | None = None

    @property
    def ready(self) -> bool:
        return self.llm.ready

    @property
    def failure(self) -> str | None:
        return self._failure or self.llm.failure

    @property
    def working_bytes(self) -> int:
        return self.llm.working_bytes

    async def chat_turn(self, messages: list[ChatMessage], max_tokens: int | None) -> ChatTurn:
        """The messages as they are: the chat template makes the prompt of them."""
        prompt_ids = await self.llm.count(messages)
        return ChatTurn(prompt_ids, self.llm.budget(len(prompt_ids), max_tokens))

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
