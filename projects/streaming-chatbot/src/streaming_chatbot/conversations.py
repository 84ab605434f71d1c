"""Conversation history kept server-side, by session id.

In memory by default (one replica; lost on restart); in Redis when `APP_REDIS_URL` is
set, so any replica can serve the next turn. A conversation is locked while a turn is
generated: two turns at once would interleave the history.
"""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

from redis.asyncio import Redis

from streaming_chatbot.schemas import Conversation, ConversationMessage


class ConversationStore(Protocol):
    async def create(self, system_prompt: str) -> Conversation: ...

    async def get(self, conversation_id: str) -> Conversation | None: ...

    async def append(self, conversation_id: str, messages: list[ConversationMessage]) -> bool:
        """Adds messages at the end; False when the conversation no longer exists."""
        ...

    async def delete(self, conversation_id: str) -> bool: ...

    async def lock(self, conversation_id: str, ttl_s: float) -> bool:
        """Takes the conversation's turn lock; False when another turn holds it."""
        ...

    async def unlock(self, conversation_id: str) -> None: ...

    async def close(self) -> None: ...


def new_conversation(system_prompt: str) -> Conversation:
    return Conversation(
        id=uuid.uuid4().hex,
        created=int(time.time()),
        messages=[ConversationMessage(role="system", content=system_prompt)],
    )


@dataclass
class _Entry:
    conversation: Conversation
    touched: float


class MemoryConversationStore:
    def __init__(self, ttl_s: float, max_conversations: int) -> None:
        self._ttl_s = ttl_s
        self._max = max_conversations
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._locks: dict[str, float] = {}

    async def create(self, system_prompt: str) -> Conversation:
        conversation = new_conversation(system_prompt)
        self._entries[conversation.id] = _Entry(conversation, time.monotonic())
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)  # the least recently used
        return conversation

    def _live(self, conversation_id: str) -> _Entry | None:
        entry = self._entries.get(conversation_id)
        if entry is None:
            return None
        now = time.monotonic()
        if now - entry.touched > self._ttl_s:
            del self._entries[conversation_id]
            return None
        entry.touched = now
        self._entries.move_to_end(conversation_id)
        return entry

    async def get(self, conversation_id: str) -> Conversation | None:
        entry = self._live(conversation_id)
        return entry.conversation.model_copy(deep=True) if entry else None

    async def append(self, conversation_id: str, messages: list[ConversationMessage]) -> bool:
        entry = self._live(conversation_id)
        if entry is None:
            return False
        entry.conversation.messages.extend(messages)
        return True

    async def delete(self, conversation_id: str) -> bool:
        self._locks.pop(conversation_id, None)
        return self._entries.pop(conversation_id, None) is not None

    async def lock(self, conversation_id: str, ttl_s: float) -> bool:
        now = time.monotonic()
        if self._locks.get(conversation_id, 0.0) > now:
            return False
        self._locks[conversation_id] = now + ttl_s
        return True

    async def unlock(self, conversation_id: str) -> None:
        self._locks.pop(conversation_id, None)

    async def close(self) -> None:
        self._entries.clear()


class RedisConversationStore:
    """One JSON header and one list of JSON messages per conversation, both with a TTL."""

    def __init__(self, redis: Redis, prefix: str, ttl_s: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._ttl_s = ttl_s

    def _key(self, conversation_id: str, part: str) -> str:
        return f"{self._prefix}:conversation:{conversation_id}:{part}"

    async def create(self, system_prompt: str) -> Conversation:
        conversation = new_conversation(system_prompt)
        meta, messages = self._key(conversation.id, "meta"), self._key(conversation.id, "messages")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(meta, str(conversation.created), ex=self._ttl_s)
            pipe.rpush(messages, *(m.model_dump_json() for m in conversation.messages))
            pipe.expire(messages, self._ttl_s)
            await pipe.execute()
        return conversation

    async def get(self, conversation_id: str) -> Conversation | None:
        meta, messages = self._key(conversation_id, "meta"), self._key(conversation_id, "messages")
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.get(meta)
            pipe.lrange(messages, 0, -1)
            pipe.expire(meta, self._ttl_s)
            pipe.expire(messages, self._ttl_s)
            created, raw, _, _ = await pipe.execute()
        if created is None:
            return None
        return Conversation(
            id=conversation_id,
            created=int(created),
            messages=[ConversationMessage.model_validate_json(item) for item in raw],
        )

    async def append(self, conversation_id: str, messages: list[ConversationMessage]) -> bool:
        meta, key = self._key(conversation_id, "meta"), self._key(conversation_id, "messages")
        if not await self._redis.exists(meta):
            return False
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.rpush(key, *(m.model_dump_json() for m in messages))
            pipe.expire(key, self._ttl_s)
            pipe.expire(meta, self._ttl_s)
            await pipe.execute()
        return True

    async def delete(self, conversation_id: str) -> bool:
        keys = [self._key(conversation_id, part) for part in ("meta", "messages", "lock")]
        return bool(await self._redis.delete(*keys))

    async def lock(self, conversation_id: str, ttl_s: float) -> bool:
        key = self._key(conversation_id, "lock")
        return bool(await self._redis.set(key, "1", nx=True, px=int(ttl_s * 1000)))

    async def unlock(self, conversation_id: str) -> None:
        await self._redis.delete(self._key(conversation_id, "lock"))

    async def close(self) -> None:
        return None
