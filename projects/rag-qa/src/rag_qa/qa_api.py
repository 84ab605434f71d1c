"""Question routes: `POST /v1/search` (retrieval only) and `POST /v1/ask`.

`/v1/ask` streams server-sent events: `answer` events with text as it is generated, then
one `sources` event (every source the prompt held, numbered as the answer cites them,
`cited` set on those it did), then `done` with the finish reason and token usage. A
failure after the first event arrives as an `error` event. When no chunk scores above
`APP_MIN_SCORE` the model is not asked: the answer says nothing was found.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from rag_qa.engines.base import Finished, SamplingParams, TextDelta
from rag_qa.errors import error_responses, request_id_of
from rag_qa.event_stream import EVENT_STREAM_CONTENT, EventStreamResponse, stream_error
from rag_qa.generation import Generation
from rag_qa.grounding import check_question, cited_sources, find_sources, fit_prompt
from rag_qa.openai_schemas import Usage
from rag_qa.prompting import build_messages
from rag_qa.runtime import RagRuntime
from rag_qa.schemas import (
    AskRequest,
    AskResponse,
    SearchRequest,
    SearchResponse,
    Source,
)
from rag_qa.service import ready_runtime
from rag_qa.store import Hit

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
            runtime.metrics,
            body.question,
            k,
            body.filter.to_store() if body.filter else None,
            body.rerank,
        )
        if not hits:
            if body.stream:
                return EventStreamResponse(_no_answer_events(settings.no_answer_text))
            return _json(AskResponse(answer=settings.no_answer_text, answered=False, sources=[]))
        prompt = await fit_prompt(
            runtime.llm,
            settings,
            lambda held: build_messages(settings.system_prompt, body.question, held),
            hits,
            body.max_tokens,
        )
        hits = prompt.hits
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
    if body.stream:
        return EventStreamResponse(_answer_events(generation, hits, request_id_of(request)))
    answer = await generation.text()
    finished = generation.finished
    return _json(
        AskResponse(
            answer=answer,
            answered=True,
            sources=cited_sources(hits, answer),
            finish_reason=finished.reason if finished else None,
            usage=Usage(**finished.usage()) if finished else None,
        )
    )


def _json(response: AskResponse) -> JSONResponse:
    return JSONResponse(response.model_dump())


def _event(name: str, data: object) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


async def _no_answer_events(text: str) -> AsyncIterator[bytes]:
    yield _event("answer", {"text": text})
    yield _event("sources", {"answered": False, "sources": []})
    yield _event("done", {"finish_reason": "no_answer", "usage": None})


async def _answer_events(
    generation: Generation, hits: list[Hit], request_id: str | None
) -> AsyncIterator[bytes]:
    parts: list[str] = []
    try:
        async with contextlib.aclosing(generation.events()) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    parts.append(event.text)
                    yield _event("answer", {"text": event.text})
                elif isinstance(event, Finished):
                    sources = [s.model_dump() for s in cited_sources(hits, "".join(parts))]
                    yield _event("sources", {"answered": True, "sources": sources})
                    yield _event(
                        "done",
                        {"finish_reason": event.reason, "usage": event.usage()},
                    )
    except Exception as exc:
        yield _event("error", stream_error(exc, request_id))
