"""Conversations: the server keeps the history, the client sends only the new message.

    POST   /v1/conversations                  -> 201 {id, created, messages}
    GET    /v1/conversations/{id}             -> the history
    POST   /v1/conversations/{id}/messages    -> the answer (SSE by default), then stored
    DELETE /v1/conversations/{id}             -> 204

The prompt is the stored history plus the new message, trimmed oldest turn first to fit
the context. A turn is stored only once its answer is complete; a turn whose client left
early leaves the history as it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from http import HTTPStatus

import anyio
from fastapi import APIRouter, Request, Response

from streaming_chatbot.engines.base import Finished
from streaming_chatbot.errors import InvalidInput, ServiceError, error_responses, request_id_of
from streaming_chatbot.event_stream import EVENT_STREAM_CONTENT, EventStreamResponse
from streaming_chatbot.history import fit_history
from streaming_chatbot.openai_api import completion, sampling
from streaming_chatbot.openai_schemas import ChatCompletion
from streaming_chatbot.runtime import ChatRuntime
from streaming_chatbot.schemas import (
    Conversation,
    ConversationMessage,
    NewConversation,
    UserTurn,
)
from streaming_chatbot.service import ready_runtime
from streaming_chatbot.sse import chat_completion_chunks

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


class ConversationNotFound(ServiceError):
    status_code = HTTPStatus.NOT_FOUND
    code = "conversation_not_found"


class ConversationBusy(ServiceError):
    status_code = HTTPStatus.CONFLICT
    code = "conversation_busy"


@router.post("", status_code=201, summary="Start a conversation")
async def create_conversation(
    request: Request, body: NewConversation | None = None
) -> Conversation:
    runtime: ChatRuntime = ready_runtime(request)
    system_prompt = body.system_prompt if body and body.system_prompt else None
    return await runtime.conversations.create(system_prompt or runtime.settings.system_prompt)


_NOT_FOUND = error_responses(
    404, s404="No such conversation, or it expired (`conversation_not_found`)."
)


@router.get("/{conversation_id}", summary="A conversation's history", responses=_NOT_FOUND)
async def get_conversation(conversation_id: str, request: Request) -> Conversation:
    runtime: ChatRuntime = ready_runtime(request)
    conversation = await runtime.conversations.get(conversation_id)
    if conversation is None:
        raise ConversationNotFound(f"no conversation {conversation_id!r} (or it expired)")
    return conversation


@router.delete(
    "/{conversation_id}", status_code=204, summary="Delete a conversation", responses=_NOT_FOUND
)
async def delete_conversation(conversation_id: str, request: Request) -> Response:
    runtime: ChatRuntime = ready_runtime(request)
    if not await runtime.conversations.delete(conversation_id):
        raise ConversationNotFound(f"no conversation {conversation_id!r} (or it expired)")
    return Response(status_code=204)


@router.post(
    "/{conversation_id}/messages",
    summary="Send a message; the answer streams as server-sent events unless stream=false",
    response_model=ChatCompletion,
    responses={
        200: {"content": EVENT_STREAM_CONTENT},
        **_NOT_FOUND,
        **error_responses(
            400,
            409,
            429,
            504,
            s400="Prompt and max_tokens past the context (`context_length_exceeded`) or a "
            "request the engine refuses (`upstream_rejected`).",
            s409="The conversation is answering another message (`conversation_busy`).",
            s429="Over the rate limit (`rate_limited`) or no stream slot in time "
            "(`too_many_streams`); see Retry-After.",
            s504="No first token within the deadline (`first_token_timeout`).",
        ),
    },
)
async def send_message(conversation_id: str, body: UserTurn, request: Request) -> object:
    started = time.perf_counter()
    runtime: ChatRuntime = ready_runtime(request)
    settings = runtime.settings
    if len(body.content) > settings.max_message_chars:
        raise InvalidInput(
            f"the message has {len(body.content)} characters; the limit is "
            f"{settings.max_message_chars}",
            code="message_too_long",
        )
    await runtime.rate_limit.check(request)
    store = runtime.conversations
    conversation = await store.get(conversation_id)
    if conversation is None:
        raise ConversationNotFound(f"no conversation {conversation_id!r} (or it expired)")
    # Held for one answer at most: its first token, then its silences, then a margin.
    lock_ttl = settings.first_token_timeout_s + settings.stream_idle_timeout_s + 600
    if not await store.lock(conversation_id, lock_ttl):
        raise ConversationBusy("another message in this conversation is being answered")
    try:
        user = ConversationMessage(role="user", content=body.content)
        history = [m.model_dump() for m in [*conversation.messages, user]]
        reserve = body.token_limit() or settings.default_max_tokens
        _, prompt_ids = await asyncio.to_thread(fit_history, runtime.llm, history, reserve)
        max_tokens = runtime.llm.budget(len(prompt_ids), body.token_limit())
        request_id = request_id_of(request) or "unknown"
        generation = await runtime.llm.open(
            prompt_ids,
            sampling(body, max_tokens),
            request_id=request_id,
            started=started,
            budget=request.app.state.memory_budget,
        )
    except BaseException:
        await store.unlock(conversation_id)
        raise

    async def remember(text: str, finished: Finished) -> None:
        answer = ConversationMessage(role="assistant", content=text)
        await store.append(conversation_id, [user, answer])

    completion_id = f"chatcmpl-{request_id}"
    created = int(time.time())
    if body.stream:

        async def chunks() -> AsyncIterator[bytes]:
            stream = chat_completion_chunks(
                generation.events(),
                completion_id=completion_id,
                created=created,
                model=settings.model_name,
                request_id=request_id,
                include_usage=True,  # the chat page shows each answer's token count
                on_finish=remember,
            )
            try:
                async with contextlib.aclosing(stream):
                    async for chunk in stream:
                        yield chunk
            finally:
                with anyio.CancelScope(shield=True):
                    await store.unlock(conversation_id)

        return EventStreamResponse(chunks())
    try:
        text = await generation.text()
        assert generation.finished is not None
        await remember(text, generation.finished)
    finally:
        await store.unlock(conversation_id)
    return completion(completion_id, created, settings.model_name, text, generation.finished)
