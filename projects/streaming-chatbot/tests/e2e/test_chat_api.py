"""The OpenAI-compatible API, against each engine: formats and sampling (the official client's
contract is tests/e2e/test_openai_client.py)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from transformers import AutoTokenizer

from tests.conftest import MODEL_NAME, chat_body

QUESTION = "What is the capital of France?"


def stream_events(url: str, body: dict[str, object], headers: dict[str, str]) -> list[str]:
    """The `data:` payloads of one streamed response, in order."""
    with httpx.stream(
        "POST",
        url + "/v1/chat/completions",
        json={**body, "stream": True},
        headers=headers,
        timeout=120,
    ) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        return [line[6:] for line in response.iter_lines() if line.startswith("data: ")]


def streamed_text(events: list[str]) -> str:
    chunks = [json.loads(event) for event in events[:-1]]
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])


def test_models_lists_the_served_model(engine_url: str, auth_headers: dict[str, str]) -> None:
    response = httpx.get(engine_url + "/v1/models", headers=auth_headers)
    assert response.status_code == 200
    [card] = response.json()["data"]
    assert card["id"] == MODEL_NAME
    assert card["max_model_len"] == 2048


def test_a_question_gets_a_correct_answer(engine_url: str, auth_headers: dict[str, str]) -> None:
    response = httpx.post(
        engine_url + "/v1/chat/completions",
        json=chat_body(QUESTION, max_tokens=24, temperature=0),
        headers=auth_headers,
        timeout=120,
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["model"] == MODEL_NAME
    assert "Paris" in body["choices"][0]["message"]["content"]
    usage = body["usage"]
    assert usage["prompt_tokens"] > 5
    assert 1 <= usage["completion_tokens"] <= 24
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_stream_follows_openai_chunk_format(engine_url: str, auth_headers: dict[str, str]) -> None:
    events = stream_events(
        engine_url, chat_body(QUESTION, max_tokens=24, temperature=0), auth_headers
    )
    assert events[-1] == "[DONE]"
    chunks = [json.loads(event) for event in events[:-1]]
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    content_chunks = [c for c in chunks if c["choices"][0]["delta"].get("content")]
    assert len(content_chunks) > 2, "the answer must arrive in pieces, not at once"
    last = chunks[-1]
    assert last["choices"][0]["finish_reason"] in ("stop", "length")
    assert all("usage" not in c for c in chunks), "usage only when stream_options asks"
    assert "Paris" in streamed_text(events)


def test_include_usage_adds_a_last_chunk_with_the_usage_and_no_choices(
    engine_url: str, auth_headers: dict[str, str]
) -> None:
    body = chat_body(QUESTION, max_tokens=8, temperature=0)
    body["stream_options"] = {"include_usage": True}
    chunks = [json.loads(event) for event in stream_events(engine_url, body, auth_headers)[:-1]]
    *answer, last = chunks
    assert all(c["usage"] is None and len(c["choices"]) == 1 for c in answer)
    assert answer[-1]["choices"][0]["finish_reason"] in ("stop", "length")
    assert last["choices"] == []
    assert last["usage"]["total_tokens"] == (
        last["usage"]["prompt_tokens"] + last["usage"]["completion_tokens"]
    )
    content = [c for c in answer if c["choices"][0]["delta"].get("content")]
    assert 1 <= last["usage"]["completion_tokens"] <= 8
    assert last["usage"]["completion_tokens"] >= len(content)


def test_greedy_stream_and_non_stream_give_the_same_text(
    engine_url: str, auth_headers: dict[str, str]
) -> None:
    body = chat_body("Name three colours of the rainbow.", max_tokens=40, temperature=0)
    whole = httpx.post(
        engine_url + "/v1/chat/completions", json=body, headers=auth_headers, timeout=120
    ).json()["choices"][0]["message"]["content"]
    assert whole
    assert streamed_text(stream_events(engine_url, body, auth_headers)) == whole


def test_max_tokens_ends_with_length(engine_url: str, auth_headers: dict[str, str]) -> None:
    body = chat_body("Write a long story about a dragon.", max_tokens=7, ignore_eos=True)
    response = httpx.post(
        engine_url + "/v1/chat/completions", json=body, headers=auth_headers, timeout=120
    ).json()
    assert response["choices"][0]["finish_reason"] == "length"
    assert response["usage"]["completion_tokens"] == 7


def test_a_stop_sequence_ends_the_answer_before_it(
    engine_url: str, auth_headers: dict[str, str]
) -> None:
    base = chat_body(QUESTION, max_tokens=24, temperature=0)
    full = httpx.post(
        engine_url + "/v1/chat/completions", json=base, headers=auth_headers, timeout=120
    ).json()["choices"][0]["message"]["content"]
    assert "Paris" in full
    stopped = httpx.post(
        engine_url + "/v1/chat/completions",
        json={**base, "stop": ["Paris"]},
        headers=auth_headers,
        timeout=120,
    ).json()
    text = stopped["choices"][0]["message"]["content"]
    assert stopped["choices"][0]["finish_reason"] == "stop"
    assert "Paris" not in text
    assert full.startswith(text)
    # Streaming holds back text that may begin a stop sequence, so none of it leaks.
    streamed = streamed_text(stream_events(engine_url, {**base, "stop": ["Paris"]}, auth_headers))
    assert streamed == text


def test_the_same_seed_samples_the_same_text(engine_url: str, auth_headers: dict[str, str]) -> None:
    body = chat_body("Tell me a short joke.", max_tokens=30, temperature=1.0, top_p=0.95)

    def sample(seed: int) -> str:
        response = httpx.post(
            engine_url + "/v1/chat/completions",
            json={**body, "seed": seed},
            headers=auth_headers,
            timeout=120,
        )
        assert response.status_code == 200, response.text
        return str(response.json()["choices"][0]["message"]["content"])

    first = sample(1234)
    assert sample(1234) == first
    others = {sample(seed) for seed in (1, 2, 3)}
    assert len(others | {first}) > 1, "different seeds should not all give the same text"


@pytest.mark.parametrize("stream", [False, True])
def test_usage_counts_match_the_tokenizer(
    engine_url: str, auth_headers: dict[str, str], model_dir: Path, stream: bool
) -> None:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    messages = [{"role": "user", "content": QUESTION}]
    expected = len(
        tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, return_dict=True
        )["input_ids"]
    )
    body = chat_body(QUESTION, max_tokens=5, temperature=0)
    if stream:
        body["stream_options"] = {"include_usage": True}
        events = stream_events(engine_url, body, auth_headers)
        usage = json.loads(events[-2])["usage"]
    else:
        usage = httpx.post(
            engine_url + "/v1/chat/completions", json=body, headers=auth_headers, timeout=120
        ).json()["usage"]
    assert usage["prompt_tokens"] == expected
