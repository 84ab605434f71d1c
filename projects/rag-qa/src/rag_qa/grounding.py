"""Grounding, shared by `/v1/ask` and the chat route: the question's checks, the sources it
finds above the score threshold, the prompt that holds as many of them as fit beside the
answer, the decision whether they answer the question at all, and the sources listed back
as the answer's attribution cites them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus

from rag_qa.answerability import Answerability, assess
from rag_qa.embeddings import Embedder
from rag_qa.errors import ServiceError
from rag_qa.evidence import Evidence
from rag_qa.generation import LLM, ChatMessage
from rag_qa.observability import Metrics
from rag_qa.retrieval import Retriever
from rag_qa.schemas import Source
from rag_qa.settings import Settings
from rag_qa.store import Hit, SearchFilter


class QuestionTooLong(ServiceError):
    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "question_too_long"


class TopKTooLarge(ServiceError):
    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "top_k_too_large"


def check_question(settings: Settings, text: str, top_k: int | None) -> int:
    """The top_k to use; 422 for a question over the length limit or a top_k too large."""
    if len(text) > settings.max_question_chars:
        raise QuestionTooLong(
            f"the question has {len(text)} characters; the limit is {settings.max_question_chars}",
            details={"length": len(text), "limit": settings.max_question_chars},
        )
    k = top_k or settings.top_k
    if k > settings.max_top_k:
        raise TopKTooLarge(f"top_k may be at most {settings.max_top_k}")
    return k


async def find_sources(
    retriever: Retriever,
    settings: Settings,
    question: str,
    k: int,
    where: SearchFilter | None = None,
    rerank: str | None = None,
) -> list[Hit]:
    """The chunks that score at least `min_score`, best first; none means no answer."""
    found = await asyncio.to_thread(
        retriever.search, question, k, where, rerank=rerank or settings.rerank
    )
    return [hit for hit in found if hit.score >= settings.min_score]


@dataclass(frozen=True)
class Judgement:
    evidence: Evidence
    answerability: Answerability
    answerable: bool


async def judge(
    embedder: Embedder, settings: Settings, metrics: Metrics, question: str, hits: list[Hit]
) -> Judgement:
    """Whether the sources the prompt holds answer the question (no sources: they do not),
    counted in rag_questions_total by outcome."""
    evidence = await asyncio.to_thread(Evidence.gather, embedder, question, hits)
    answerability = assess(evidence)
    answerable = bool(hits) and answerability.score >= settings.min_answerability
    metrics.rag_questions.labels(outcome="answered" if answerable else "no_answer").inc()
    return Judgement(evidence, answerability, answerable)


@dataclass(frozen=True)
class GroundedPrompt:
    prompt_ids: list[int]
    hits: list[Hit]  # the sources the prompt holds, numbered from 1 in this order
    max_tokens: int


async def fit_prompt(
    llm: LLM,
    settings: Settings,
    messages_for: Callable[[list[Hit]], list[ChatMessage]],
    hits: list[Hit],
    max_tokens: int | None,
) -> GroundedPrompt:
    """The prompt with as many sources as fit beside the answer, best first; with one
    source left, an answer that still does not fit is a 400 (context_length_exceeded)."""
    wanted = max_tokens or settings.answer_max_tokens
    while True:
        prompt_ids = await llm.count(messages_for(hits))
        if len(prompt_ids) + wanted <= settings.max_context_tokens or len(hits) <= 1:
            return GroundedPrompt(prompt_ids, hits, llm.budget(len(prompt_ids), wanted))
        hits = hits[:-1]


def listed_sources(hits: list[Hit], cited: set[int]) -> list[Source]:
    """The sources the prompt held, numbered from 1, `cited` set on those in `cited`."""
    return [
        Source.of(number, hit, cited=number in cited) for number, hit in enumerate(hits, start=1)
    ]
