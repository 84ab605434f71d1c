"""OpenAI-compatible routes: `POST /v1/chat/completions` and `GET /v1/models`.

The official `openai` client works against these unchanged (`base_url=<gateway>/v1`).
"""

from __future__ import annotations

import time
from http import HTTPStatus

from fastapi import APIRouter, Request

from streaming_chatbot.engines.base import Finished, SamplingParams
from streaming_chatbot.errors import ServiceError, error_responses, request_id_of
from streaming_chatbot.event_stream import EVENT_STREAM_CONTENT, EventStreamResponse
from streaming_chatbot.runtime import ChatRuntime
from streaming_chatbot.schemas import (
    ChatCompletion,
    ChatCompletionRequest,
    Choice,
    ChoiceMessage,
    ModelCard,
    ModelList,
    SamplingFields,
    Usage,
)
from streaming_chatbot.service import ready_runtime
from streaming_chatbot.settings import Settings
from streaming_chatbot.sse import chat_completion_chunks

router = APIRouter(prefix="/v1", tags=["chat"])

STARTED = int(time.time())


class ModelNotFound(ServiceError):
    status_code = HTTPStatus.NOT_FOUND
    code = "model_not_found"


class UnsupportedField(ServiceError):
    status_code = HTTPStatus.BAD_REQUEST
    code = "unsupported_field"


def sampling(fields: SamplingFields, max_tokens: int) -> SamplingParams:
    return SamplingParams(
        max_tokens=max_tokens,
        temperature=fields.temperature,
        top_p=fields.top_p,
        seed=fields.seed,
        stop=fields.stop_sequences(),
        ignore_eos=fields.ignore_eos,
    )


@router.get("/models", summary="The model this gateway serves")
async def list_models(request: Request) -> ModelList:
    settings: Settings = request.app.state.settings
    card = ModelCard(
        id=settings.model_name,
        created=STARTED,
        owned_by=settings.service_name,
        max_model_len=settings.max_context_tokens,
    )
    return ModelList(data=[card])


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
            "this gateway does not do (`unsupported_field`), or one the engine refuses "
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
    runtime: ChatRuntime = ready_runtime(request)
    settings = runtime.settings
    if (field := body.unsupported_field()) is not None:
        raise UnsupportedField(
            f"{field} is not supported by this gateway: it serves plain chat completions"
        )
    if body.model != settings.model_name:
        raise ModelNotFound(
            f"model {body.model!r} is not served here; GET /v1/models lists {settings.model_name!r}"
        )
    await runtime.rate_limit.check(request)
    messages = [{"role": m.role, "content": m.text()} for m in body.messages]
    prompt_ids = await runtime.llm.count(messages)
    max_tokens = runtime.llm.budget(len(prompt_ids), body.token_limit())
    request_id = request_id_of(request) or "unknown"
    generation = await runtime.llm.open(
        prompt_ids,
        sampling(body, max_tokens),
        request_id=request_id,
        started=started,
        budget=request.app.state.memory_budget,
    )
    completion_id = f"chatcmpl-{request_id}"
    created = int(time.time())
    if body.stream:
        chunks = chat_completion_chunks(
            generation,
            completion_id=completion_id,
            created=created,
            model=settings.model_name,
            request_id=request_id,
            include_usage=body.stream_options is not None and body.stream_options.include_usage,
        )
        return EventStreamResponse(chunks)
    text = await generation.text()
    assert generation.finished is not None
    return completion(completion_id, created, settings.model_name, text, generation.finished)


def completion(
    completion_id: str, created: int, model: str, text: str, finished: Finished
) -> ChatCompletion:
    return ChatCompletion(
        id=completion_id,
        created=created,
        model=model,
        choices=[Choice(message=ChoiceMessage(content=text), finish_reason=finished.reason)],
        usage=Usage(**finished.usage()),
    )
