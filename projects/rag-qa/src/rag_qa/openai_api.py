"""OpenAI-compatible routes: `POST /v1/chat/completions`, `GET /v1/models` and
`GET /v1/models/{model}`.

The official `openai` client works against these unchanged (`base_url=<service>/v1`).
What a chat turns into is the service's own: its runtime's `chat_turn` makes the prompt
the model reads from the request's messages (or answers without the model), and may add
fields of its own to the completion.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Protocol

from fastapi import APIRouter, Request

from rag_qa.engines.base import EngineEvent, Finished, SamplingParams, TextDelta
from rag_qa.errors import ServiceError, error_responses, request_id_of
from rag_qa.event_stream import EVENT_STREAM_CONTENT, EventStreamResponse
from rag_qa.generation import LLM, ChatMessage, Generation
from rag_qa.limits import ClientRateLimit
from rag_qa.openai_schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    ChoiceMessage,
    ModelCard,
    ModelList,
    SamplingFields,
    Usage,
)
from rag_qa.openapi import SchemaLimits
from rag_qa.service import ready_runtime
from rag_qa.settings import Settings
from rag_qa.sse import Extras, chat_completion_chunks, no_extras

router = APIRouter(prefix="/v1", tags=["chat"])

STARTED = int(time.time())


class ModelNotFound(ServiceError):
    status_code = HTTPStatus.NOT_FOUND
    code = "model_not_found"


class UnsupportedField(ServiceError):
    status_code = HTTPStatus.BAD_REQUEST
    code = "unsupported_field"


@dataclass(frozen=True)
class ChatTurn:
    """What a service makes of a chat: the prompt the model reads and the answer's token
    limit, or an answer given without the model; `extras` (given the answer) returns the
    fields the completion carries beside OpenAI's."""

    prompt_ids: list[int] = field(default_factory=list)
    max_tokens: int = 0
    answer: str | None = None
    extras: Extras = no_extras
    # The answer's events made of the generation's (the service's own reading of what the
    # model writes); None: the generation's events as they come.
    compose: Callable[[Generation], AsyncIterator[EngineEvent]] | None = None

    def events(self, generation: Generation) -> AsyncIterator[EngineEvent]:
        return self.compose(generation) if self.compose else generation.events()


class ChatService(Protocol):
    settings: Settings
    llm: LLM
    rate_limit: ClientRateLimit

    async def chat_turn(self, messages: list[ChatMessage], max_tokens: int | None) -> ChatTurn:
        """The turn for `messages`; ContextLengthExceeded (400) when it cannot fit."""
        ...


def sampling(fields: SamplingFields, max_tokens: int) -> SamplingParams:
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=fields.temperature,
        top_p=fields.top_p,
        seed=fields.seed,
        stop=fields.stop_sequences(),
        ignore_eos=fields.ignore_eos,
    )


def _card(settings: Settings) -> ModelCard:
    return ModelCard(
        id=settings.model_name,
        created=STARTED,
        owned_by=settings.service_name,
        max_model_len=settings.max_context_tokens,
    )


def schema_limits(settings: Settings) -> SchemaLimits:
    """What the routes' schema says from settings: the one model served."""
    return {"ChatCompletionRequest.model": {"enum": [settings.model_name]}}


def _served(settings: Settings, model: str) -> None:
    if model != settings.model_name:
        raise ModelNotFound(
            f"model {model!r} is not served here; GET /v1/models lists {settings.model_name!r}"
        )


@router.get("/models", summary="The model this service serves")
async def list_models(request: Request) -> ModelList:
    return ModelList(data=[_card(request.app.state.settings)])


@router.get(
    "/models/{model}",
    summary="One served model",
    responses=error_responses(404, s404="No such model (`model_not_found`)."),
)
async def get_model(model: str, request: Request) -> ModelCard:
    settings: Settings = request.app.state.settings
    _served(settings, model)
    return _card(settings)


@router.post(
    "/chat/completions",
    summary="Chat completion, streamed as server-sent events when `stream` is true",
    response_model=ChatCompletion,
    responses={
        200: {"content": EVENT_STREAM_CONTENT},
        **error_responses(
            400,
            404,
            429,
            504,
            s400="Prompt and max_tokens past the context (`context_length_exceeded`), a field "
            "this service does not do (`unsupported_field`), or one the engine refuses "
            "(`upstream_rejected`).",
            s404="No such model (`model_not_found`).",
            s429="Over the rate limit (`rate_limited`) or no stream slot in time "
            "(`too_many_streams`); see Retry-After.",
            s504="No first token within the deadline (`first_token_timeout`).",
        ),
    },
)
async def chat_completions(body: ChatCompletionRequest, request: Request) -> object:
    started = time.perf_counter()
    runtime: ChatService = ready_runtime(request)
    settings = runtime.settings
    if (name := body.unsupported_field()) is not None:
        raise UnsupportedField(
            f"{name} is not supported by this service: it serves plain chat completions"
        )
    _served(settings, body.model)
    await runtime.rate_limit.check(request)
    messages: list[ChatMessage] = [{"role": m.role, "content": m.text()} for m in body.messages]
    request_id = request_id_of(request) or "unknown"
    completion_id = f"chatcmpl-{request_id}"
    created = int(time.time())
    # The stream's slot before the prompt is made: an overloaded replica refuses at once.
    with runtime.llm.admit() as slot:
        turn = await runtime.chat_turn(messages, body.token_limit())
        generation = None
        if turn.answer is None:
            generation = await runtime.llm.open(
                turn.prompt_ids,
                sampling(body, turn.max_tokens),
                request_id=request_id,
                started=started,
                budget=request.app.state.memory_budget,
                slot=slot,
            )
    events = turn.events(generation) if generation else _answered(turn.answer or "")
    if body.stream:
        chunks = chat_completion_chunks(
            events,
            completion_id=completion_id,
            created=created,
            model=settings.model_name,
            request_id=request_id,
            include_usage=body.stream_options is not None and body.stream_options.include_usage,
            extras=turn.extras,
        )
        return EventStreamResponse(chunks)
    text, finished = await _read(events)
    return completion(completion_id, created, settings.model_name, text, finished, turn.extras)


# How an answer the model was not asked for finishes: no tokens read or generated.
_ANSWERED = Finished(reason="stop", prompt_tokens=0, completion_tokens=0)


async def _read(events: AsyncIterator[EngineEvent]) -> tuple[str, Finished]:
    """The whole answer and how it finished."""
    parts: list[str] = []
    finished = _ANSWERED
    async with contextlib.aclosing(events) as reading:
        async for event in reading:
            if isinstance(event, TextDelta):
                parts.append(event.text)
            elif isinstance(event, Finished):
                finished = event
    return "".join(parts), finished


async def _answered(text: str) -> AsyncIterator[EngineEvent]:
    """An answer the model was not asked for, as the engine's events."""
    yield TextDelta(text)
    yield _ANSWERED


def completion(
    completion_id: str,
    created: int,
    model: str,
    text: str,
    finished: Finished,
    extras: Extras = no_extras,
) -> ChatCompletion:
    return ChatCompletion(
        id=completion_id,
        created=created,
        model=model,
        choices=[Choice(message=ChoiceMessage(content=text), finish_reason=finished.reason)],
        usage=Usage(**finished.usage()),
        **extras(text),
    )
