"""Question routes: `POST /v1/search` (retrieval only) and `POST /v1/ask`.

`/v1/ask` streams server-sent events: an `answer` event per sentence as it is written and
attributed (its text with its `[n]` markers, the numbers of the sources that support it,
and whether any does), then one `sources` event (every source the prompt held, numbered
as the markers number them, `cited` set on those that support a sentence), then `done`
with the finish reason and token usage. A failure after the first event arrives as an
`error` event. When no chunk scores above `APP_MIN_SCORE`, or the sources do not answer
the question (answerability.py), the model is not asked: the answer says the documents
do not say, and `answered` is false.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from rag_qa.answers import Answer, compose
from rag_qa.attribution import AnswerSentence
from rag_qa.engines.base import SamplingParams
from rag_qa.errors import error_responses, request_id_of
from rag_qa.event_stream import EVENT_STREAM_CONTENT, EventStreamResponse, stream_error
from rag_qa.evidence import Evidence
from rag_qa.generation import Generation
from rag_qa.grounding import (
    Judgement,
    check_question,
    find_sources,
    fit_prompt,
    judge,
    listed_sources,
)
from rag_qa.openai_schemas import Usage
from rag_qa.prompting import build_messages
from rag_qa.runtime import RagRuntime
from rag_qa.schemas import (
    Answerability,
    AnswerPart,
    AskRequest,
    AskResponse,
    SearchRequest,
    SearchResponse,
    Source,
)
from rag_qa.service import ready_runtime
from rag_qa.settings import Settings

router = APIRouter(prefix="/v1", tags=["questions"])


_TOO_LONG = (
    "A question over the length limit (`question_too_long`), a top_k over the limit "
    "(`top_k_too_large`) or a body that does not match the schema (`invalid_request`)."
)


@router.post(
    "/search",
    response_model=SearchResponse,
    summary="The chunks closest to a query",
    responses=error_responses(422, s422=_TOO_LONG),
)
async def search(request: Request, body: SearchRequest) -> SearchResponse:
    runtime: RagRuntime = ready_runtime(request)
    k = check_question(runtime.settings, body.query, body.top_k)
    hits = await asyncio.to_thread(
        runtime.retriever.search,
        body.query,
        k,
        body.filter.to_store() if body.filter else None,
        rerank=body.rerank or runtime.settings.rerank,
    )
    return SearchResponse(
        results=[Source.of(number, hit) for number, hit in enumerate(hits, start=1)]
    )


@router.post(
    "/ask",
    response_model=AskResponse,
    summary="Answer from the documents, with cited sources",
    responses={
        200: {"content": EVENT_STREAM_CONTENT},
        **error_responses(
            400,
            422,
            429,
            504,
            s400="The question and max_tokens past the context (`context_length_exceeded`) "
            "or refused by the engine (`upstream_rejected`).",
            s422=_TOO_LONG,
            s429="Over the rate limit (`rate_limited`) or no stream slot in time "
            "(`too_many_streams`); see Retry-After.",
            s504="No first token within the deadline (`first_token_timeout`).",
        ),
    },
)
async def ask(request: Request, body: AskRequest) -> EventStreamResponse | JSONResponse:
    started = time.perf_counter()
    runtime: RagRuntime = ready_runtime(request)
    settings = runtime.settings
    k = check_question(settings, body.question, body.top_k)
    await runtime.rate_limit.check(request)
    # The stream's slot before retrieval: an overloaded replica refuses before any work.
    with runtime.llm.admit() as slot:
        hits = await find_sources(
            runtime.retriever,
            settings,
            body.question,
            k,
            body.filter.to_store() if body.filter else None,
            body.rerank,
        )
        prompt = await fit_prompt(
            runtime.llm,
            settings,
            lambda held: build_messages(settings.system_prompt, body.question, held),
            hits[: settings.prompt_sources],
            body.max_tokens,
        )
        judgement = await judge(
            runtime.embedder, settings, runtime.metrics, body.question, prompt.hits
        )
        judged = _answerability(judgement) if prompt.hits else None
        if not judgement.answerable:
            if body.stream:
                return EventStreamResponse(_no_answer_events(settings.no_answer_text, judged))
            return _json(
                AskResponse(
                    answer=settings.no_answer_text,
                    answered=False,
                    answerability=judged,
                    sources=[],
                )
            )
        params = SamplingParams(
            max_tokens=prompt.max_tokens, temperature=body.temperature, seed=body.seed
        )
        generation = await runtime.llm.open(
            prompt.prompt_ids,
            params,
            request_id=request_id_of(request) or "ask",
            started=started,
            budget=request.app.state.memory_budget,
            slot=slot,
        )
    evidence = judgement.evidence
    if body.stream:
        return EventStreamResponse(
            _answer_events(generation, evidence, settings, judged, request_id_of(request))
        )
    answer = Answer()
    async for _ in compose(generation, evidence, settings, answer):
        pass
    finished = answer.finished
    return _json(
        AskResponse(
            answer=answer.text,
            answered=True,
            extracted=answer.extracted,
            parts=[_part(sentence) for sentence in answer.sentences],
            answerability=judged,
            sources=listed_sources(evidence.hits, answer.cited()),
            finish_reason=finished.reason if finished else None,
            usage=Usage(**finished.usage()) if finished else None,
        )
    )


def _json(response: AskResponse) -> JSONResponse:
    return JSONResponse(response.model_dump())


def _answerability(judgement: Judgement) -> Answerability:
    judged = judgement.answerability
    return Answerability(
        score=round(judged.score, 4),
        similarity=judged.similarity,
        coverage=judged.coverage,
        missing=list(judged.missing),
    )


def _part(sentence: AnswerSentence) -> AnswerPart:
    return AnswerPart(
        text=sentence.cited(), sources=list(sentence.sources), supported=sentence.supported
    )


def _event(name: str, data: object) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _no_answer_events(text: str, judged: Answerability | None) -> AsyncIterator[bytes]:
    yield _event("answer", {"text": text, "sources": [], "supported": False})
    yield _event(
        "sources",
        {
            "answered": False,
            "extracted": False,
            "answerability": judged.model_dump() if judged else None,
            "sources": [],
        },
    )
    yield _event("done", {"finish_reason": "no_answer", "usage": None})


async def _answer_events(
    generation: Generation,
    evidence: Evidence,
    settings: Settings,
    judged: Answerability | None,
    request_id: str | None,
) -> AsyncIterator[bytes]:
    answer = Answer()
    try:
        first = True
        async for sentence in compose(generation, evidence, settings, answer):
            part = _part(sentence).model_dump()
            # Sentences are joined by a space, as the JSON answer joins them.
            part["text"] = part["text"] if first else " " + part["text"]
            first = False
            yield _event("answer", part)
        sources = [s.model_dump() for s in listed_sources(evidence.hits, answer.cited())]
        yield _event(
            "sources",
            {
                "answered": True,
                "extracted": answer.extracted,
                "answerability": judged.model_dump() if judged else None,
                "sources": sources,
            },
        )
        finished = answer.finished
        yield _event(
            "done",
            {
                "finish_reason": finished.reason if finished else "stop",
                "usage": finished.usage() if finished else None,
            },
        )
    except Exception as exc:
        yield _event("error", stream_error(exc, request_id))
