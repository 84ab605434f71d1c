"""The OpenAI-compatible chat route answers from the documents: the same sources as
/v1/ask, listed in the completion (and in the stream's finishing chunk), the no-answer
text when nothing is found, and earlier turns kept in the prompt."""

from __future__ import annotations

import httpx
import openai
import pytest

from tests.api_keys import HEADERS
from tests.conftest import CORPUS, upload
from tests.metrics import metric_value

DOCUMENT = "employee-handbook.md"
LEAVE = "How many days of paid annual leave does a full-time employee get?"
UNRELATED = "What is the boiling point of tungsten?"


@pytest.fixture(scope="module")
def url(base_url: str) -> str:
    response = upload(base_url, dict(HEADERS), DOCUMENT, (CORPUS / DOCUMENT).read_bytes())
    assert response.status_code == 201, response.text
    return base_url


@pytest.fixture(scope="module")
def client(url: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=url + "/v1", api_key="unused", default_headers=HEADERS, max_retries=0
    )


@pytest.fixture(scope="module")
def model(client: openai.OpenAI) -> str:
    return client.models.list().data[0].id


def _ask(question: str) -> list[openai.types.chat.ChatCompletionMessageParam]:
    return [{"role": "user", "content": question}]


def test_a_completion_lists_the_sources_of_its_answer(
    client: openai.OpenAI, model: str, url: str
) -> None:
    completion = client.chat.completions.create(
        model=model, messages=_ask(LEAVE), max_tokens=24, temperature=0
    )
    sources = (completion.model_extra or {})["sources"]
    assert sources, "an answered question lists what it was answered from"
    assert sources[0]["filename"] == DOCUMENT
    assert "26 days of paid annual leave" in " ".join(s["text"] for s in sources)
    assert [s["number"] for s in sources] == list(range(1, len(sources) + 1))
    # The same answer and sources as /v1/ask gives for the same question.
    asked = httpx.post(
        url + "/v1/ask",
        json={"question": LEAVE, "max_tokens": 24, "stream": False},
        headers=HEADERS,
        timeout=120,
    ).json()
    assert completion.choices[0].message.content == asked["answer"]
    assert [s["text"] for s in sources] == [s["text"] for s in asked["sources"]]


def test_a_stream_lists_the_sources_in_its_finishing_chunk(
    client: openai.OpenAI, model: str
) -> None:
    chunks = list(
        client.chat.completions.create(
            model=model, messages=_ask(LEAVE), max_tokens=8, temperature=0, stream=True
        )
    )
    [finishing] = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert (finishing.model_extra or {})["sources"][0]["filename"] == DOCUMENT
    assert all("sources" not in (c.model_extra or {}) for c in chunks if c is not finishing)


def test_a_question_the_documents_do_not_answer_gets_the_no_answer_text(
    client: openai.OpenAI, model: str, url: str
) -> None:
    before = httpx.get(url + "/metrics").text
    completion = client.chat.completions.create(model=model, messages=_ask(UNRELATED))
    assert "could not find" in (completion.choices[0].message.content or "")
    assert (completion.model_extra or {})["sources"] == []
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 0
    streamed = client.chat.completions.create(model=model, messages=_ask(UNRELATED), stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in streamed if c.choices)
    assert text == completion.choices[0].message.content
    after = httpx.get(url + "/metrics").text
    assert metric_value(after, "llm_completion_tokens_total") == metric_value(
        before, "llm_completion_tokens_total"
    ), "the model was asked anyway"


def test_earlier_turns_and_the_callers_instructions_are_in_the_prompt(
    client: openai.OpenAI, model: str
) -> None:
    alone = client.chat.completions.create(model=model, messages=_ask(LEAVE), max_tokens=1)
    conversation = client.chat.completions.create(
        model=model,
        messages=[
            {"role": "system", "content": "Answer in one sentence."},
            {"role": "user", "content": "Hello, I work here full-time."},
            {"role": "assistant", "content": "Hello! How can I help?"},
            {"role": "user", "content": LEAVE},
        ],
        max_tokens=1,
    )
    assert alone.usage is not None
    assert conversation.usage is not None
    assert conversation.usage.prompt_tokens > alone.usage.prompt_tokens + 15


@pytest.mark.parametrize(
    "messages",
    [
        [{"role": "user", "content": LEAVE}, {"role": "assistant", "content": "It is"}],
        [{"role": "system", "content": "Be brief."}],
        [{"role": "user", "content": "   "}],
    ],
)
def test_a_chat_that_asks_no_question_is_422(
    client: openai.OpenAI, model: str, messages: list[openai.types.chat.ChatCompletionMessageParam]
) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        client.chat.completions.create(model=model, messages=messages)
    assert refused.value.code == "no_question"


def test_a_question_over_the_length_limit_is_422(client: openai.OpenAI, model: str) -> None:
    with pytest.raises(openai.UnprocessableEntityError) as refused:
        client.chat.completions.create(model=model, messages=_ask("x" * 1001))
    assert refused.value.code == "question_too_long"
