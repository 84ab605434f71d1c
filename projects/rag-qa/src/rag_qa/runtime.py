"""The service's runtime: embedder, vector store and LLM, started together."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

from redis.asyncio import Redis

from rag_qa.answers import Answer, answer_events
from rag_qa.embeddings import Embedder
from rag_qa.engines.base import EngineEvent
from rag_qa.generation import LLM, ChatMessage, Generation
from rag_qa.grounding import (
    check_question,
    find_sources,
    fit_prompt,
    judge,
    listed_sources,
)
from rag_qa.ingestion import IngestionBusy, Ingestor
from rag_qa.limits import ClientRateLimit
from rag_qa.observability import Metrics
from rag_qa.openai_api import ChatTurn
from rag_qa.prompting import build_messages, chat_question
from rag_qa.retrieval import Retriever
from rag_qa.settings import Settings
from rag_qa.store import Hit, VectorStore, create_store

logger = logging.getLogger(__name__)


class RagRuntime:
    def __init__(
        self, settings: Settings, metrics: Metrics, store: VectorStore | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.embedder = Embedder(settings, metrics)
        self.store = store or create_store(settings)
        self.llm = LLM(settings, metrics)
        self.ingestor = Ingestor(settings, self.embedder, self.store, metrics)
        self.retriever = Retriever(self.embedder, self.store, metrics)
        self.redis: Redis | None = None
        if settings.redis_url:
            self.redis = Redis.from_url(
                settings.redis_url, socket_connect_timeout=2, socket_timeout=2
            )
        self.rate_limit = ClientRateLimit(settings, metrics, self.redis)
        self._store_open = False
        self._failure: str | None = None
        self._ingesting = 0
        self._ingestion_slots = asyncio.Semaphore(settings.max_concurrent_ingestions)

    @property
    def ready(self) -> bool:
        return self.embedder.ready and self._store_open and self.llm.ready

    @property
    def failure(self) -> str | None:
        return self._failure or self.llm.failure

    @property
    def working_bytes(self) -> int:
        return self.embedder.working_bytes + self.llm.working_bytes

    async def chat_turn(self, messages: list[ChatMessage], max_tokens: int | None) -> ChatTurn:
        """A chat answered from the documents as /v1/ask answers: its last message is the
        question, retrieved on and answered from the sources that fit, the answer composed
        and attributed, the sources listed in the completion's `sources`; when no chunk
        scores above `min_score` or the sources do not answer it, the no-answer text."""
        settings = self.settings
        chat = chat_question(messages)
        k = check_question(settings, chat.question, None)
        hits = await find_sources(self.retriever, settings, chat.question, k)

        def messages_for(held: list[Hit]) -> list[ChatMessage]:
            return build_messages(
                settings.system_prompt,
                chat.question,
                held,
                history=chat.history,
                instructions=chat.instructions,
            )

        prompt = await fit_prompt(
            self.llm, settings, messages_for, hits[: settings.prompt_sources], max_tokens
        )
        judgement = await judge(self.embedder, settings, self.metrics, chat.question, prompt.hits)
        if not judgement.answerable:
            return ChatTurn(answer=settings.no_answer_text, extras=lambda _: {"sources": []})

        answer = Answer()

        def sources(_: str) -> dict[str, object]:
            listed = listed_sources(prompt.hits, answer.cited())
            return {"sources": [source.model_dump() for source in listed]}

        def compose(generation: Generation) -> AsyncIterator[EngineEvent]:
            return answer_events(generation, judgement.evidence, settings, answer)

        return ChatTurn(prompt.prompt_ids, prompt.max_tokens, extras=sources, compose=compose)

    async def start(self) -> None:
        try:
            await asyncio.to_thread(self.embedder.load)
        except Exception as exc:
            self._failure = f"cannot load the embedding model: {exc}"
            raise
        try:
            await asyncio.to_thread(self.store.open, self.embedder.dimension)
        except Exception as exc:
            self._failure = f"cannot open the {self.settings.vector_store} store: {exc}"
            raise
        self._store_open = True
        self.metrics.rag_store_chunks.set(await asyncio.to_thread(self.store.count))
        await self.llm.start()

    async def stop(self) -> None:
        await self.llm.stop()
        if self._store_open:
            self._store_open = False
            await asyncio.to_thread(self.store.close)
        if self.redis is not None:
            await self.redis.aclose()

    @contextlib.asynccontextmanager
    async def ingestion_slot(self) -> AsyncIterator[None]:
        """One of max_concurrent_ingestions; a few more wait, beyond that 503."""
        if self._ingesting >= 2 * self.settings.max_concurrent_ingestions:
            raise IngestionBusy(
                "too many documents are being ingested; retry shortly",
                retry_after_s=self.settings.retry_after_s * 5,
            )
        self._ingesting += 1
        try:
            async with self._ingestion_slots:
                yield
        finally:
            self._ingesting -= 1

    async def refresh_store_size(self) -> None:
        self.metrics.rag_store_chunks.set(await asyncio.to_thread(self.store.count))
