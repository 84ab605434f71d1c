"""The official `openai` client against the service's OpenAI-compatible routes, as a
contract: models, a completion, a stream with usage, and every error raised as the
client's own exception type with the service's error code."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.api_keys import HEADERS
from tests.live_server import serve
from tests.workload import Workload


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=url + "/v1",
        api_key="unused",
        default_headers=HEADERS,
        max_retries=0,
        timeout=120,
    )


@pytest.fixture(scope="module")
def client(workload: Workload) -> Iterator[openai.OpenAI]:
    """The service with the data it answers from, and no rate limit."""
    with serve(workload.app(rate_limit_rps=0)) as url:
        workload.prepare(url)
        yield _client(url)


@pytest.fixture(scope="module")
def model(client: openai.OpenAI) -> str:
    [card] = client.models.list().data
    return card.id


def _ask(question: str) -> list[openai.types.chat.ChatCompletionMessageParam]:
    return [{"role": "user", "content": question}]


def test_the_served_model_is_listed_and_retrieved(client: openai.OpenAI, model: str) -> None:
    card = client.models.retrieve(model)
    assert card.id == model
    assert card.object == "model"
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("no-such-model")
    assert missing.value.code == "model_not_found"


def test_the_schema_names_the_served_model(client: openai.OpenAI, model: str) -> None:
    """What the OpenAPI document allows for `model` is what the route serves, so a client
    generated from it (or a fuzzer) sends a model that is answered."""
    schema = httpx.get(str(client.base_url).removesuffix("v1/") + "openapi.json").json()
    request = schema["components"]["schemas"]["ChatCompletionRequest"]
    assert request["properties"]["model"]["enum"] == [model]


def test_a_completion(client: openai.OpenAI, model: str, chat_question: str) -> None:
    completion = client.chat.completions.create(
        model=model, messages=_ask(chat_question), max_tokens=16, temperature=0
    )
    assert completion.id.startswith("chatcmpl-")
    assert completion.object == "chat.completion"
    assert completion.model == model
    [choice] = completion.choices
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    usage = completion.usage
    assert usage is not None
    assert usage.prompt_tokens > 0
    assert 1 <= usage.completion_tokens <= 16
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_a_stream_ends_with_its_usage(
    client: openai.OpenAI, model: str, chat_question: str, streamed_by: str
) -> None:
    stream = client.chat.completions.create(
        model=model,
        messages=_ask(chat_question),
        stream=True,
        stream_options={"include_usage": True},
        max_tokens=8,
        temperature=0,
        extra_body={"ignore_eos": True},
    )
    chunks = list(stream)
    *answer, last = chunks
    assert {c.id for c in chunks} == {chunks[0].id}
    assert {c.object for c in chunks} == {"chat.completion.chunk"}
    assert answer[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in answer if c.choices[0].delta.content]
    finish_reason = answer[-1].choices[0].finish_reason
    assert last.choices == []
    assert last.usage is not None
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens
    if streamed_by == "token":
        assert len(pieces) >= 2, "the answer must arrive in pieces"
        assert finish_reason == "length"
        assert last.usage.completion_tokens == 8
    else:
        # A sentence at a time, once the service has attributed it: one may be all. The
        # service stops the model itself once the answer has a sentence for the question,
        # and then says "stop" for the tokens it let the model write.
        assert pieces, "the answer must arrive"
        assert (finish_reason, last.usage.completion_tokens) == ("length", 8) or (
            finish_reason == "stop" and 1 <= last.usage.completion_tokens <= 8
        )


def test_greedy_stream_and_completion_agree(
    client: openai.OpenAI, model: str, chat_question: str
) -> None:
    asked = {"model": model, "messages": _ask(chat_question), "max_tokens": 12, "temperature": 0}
    whole = client.chat.completions.create(**asked).choices[0].message.content  # type: ignore[call-overload]
    stream = client.chat.completions.create(**asked, stream=True)  # type: ignore[call-overload]
    pieces = [c.choices[0].delta.content or "" for c in stream if c.choices]
    assert whole
    assert "".join(pieces) == whole


def test_each_error_is_the_clients_own_exception(
    client: openai.OpenAI, model: str, chat_question: str
) -> None:
    question = _ask(chat_question)
    with pytest.raises(openai.NotFoundError) as unknown:
        client.chat.completions.create(model="no-such-model", messages=question)
    assert unknown.value.code == "model_not_found"
    with pytest.raises(openai.BadRequestError) as json_mode:
        client.chat.completions.create(
            model=model, messages=question, response_format={"type": "json_object"}
        )
    assert json_mode.value.code == "unsupported_field"
    assert "response_format" in json_mode.value.message
    tool = {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}
    with pytest.raises(openai.BadRequestError) as tools:
        client.chat.completions.create(model=model, messages=question, tools=[tool])  # type: ignore[list-item]
    assert tools.value.code == "unsupported_field"
    with pytest.raises(openai.UnprocessableEntityError) as invalid:
        client.chat.completions.create(model=model, messages=question, temperature=5)
    assert invalid.value.code == "invalid_request"
    with pytest.raises(openai.BadRequestError) as too_long:
        client.chat.completions.create(model=model, messages=question, max_tokens=10**6)
    assert too_long.value.code == "context_length_exceeded"


def test_over_the_rate_limit_is_a_rate_limit_error(workload: Workload, chat_question: str) -> None:
    # One request, then one every hundred seconds.
    with serve(workload.app(rate_limit_rps=0.01, rate_limit_burst=1)) as url:
        workload.prepare(url)
        client = _client(url)
        model = client.models.list().data[0].id
        client.chat.completions.create(model=model, messages=_ask(chat_question), max_tokens=1)
        with pytest.raises(openai.RateLimitError) as limited:
            client.chat.completions.create(model=model, messages=_ask(chat_question), max_tokens=1)
    assert limited.value.code == "rate_limited"
    assert int(limited.value.response.headers["Retry-After"]) >= 1
