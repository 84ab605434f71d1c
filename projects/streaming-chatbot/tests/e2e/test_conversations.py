"""Conversations: history kept by the server, trimmed to the context, turns kept whole."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from streaming_chatbot.app import create_app
from streaming_chatbot.generation import LLM
from streaming_chatbot.history import fit_history
from streaming_chatbot.observability import Metrics
from streaming_chatbot.settings import Settings
from tests.live_server import serve


def start(url: str, headers: dict[str, str], **body: object) -> dict[str, object]:
    response = httpx.post(url + "/v1/conversations", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def say(
    url: str, conversation: str, headers: dict[str, str], content: str, **fields: object
) -> tuple[str, dict[str, int]]:
    """Sends one message and reads the streamed answer: (text, usage)."""
    body = {"content": content, "max_tokens": 24, "temperature": 0, **fields}
    text, usage = "", {}
    with httpx.stream(
        "POST",
        f"{url}/v1/conversations/{conversation}/messages",
        json=body,
        headers=headers,
        timeout=120,
    ) as response:
        assert response.status_code == 200, response.read()
        for line in response.iter_lines():
            if not line.startswith("data: {"):
                continue
            chunk = json.loads(line[6:])
            for choice in chunk["choices"]:
                text += choice["delta"].get("content", "")
            usage = chunk.get("usage") or usage
    return text, usage


def test_the_server_keeps_the_history(base_url: str, auth_headers: dict[str, str]) -> None:
    conversation = start(base_url, auth_headers, system_prompt="You are terse.")
    assert conversation["messages"] == [{"role": "system", "content": "You are terse."}]
    cid = str(conversation["id"])

    first, first_usage = say(base_url, cid, auth_headers, "What is the capital of France?")
    assert "Paris" in first
    second, second_usage = say(base_url, cid, auth_headers, "And of Italy?")
    assert second
    # The second prompt carries the first turn: its prompt is longer than the whole first.
    assert second_usage["prompt_tokens"] > first_usage["total_tokens"]

    history = httpx.get(f"{base_url}/v1/conversations/{cid}", headers=auth_headers).json()
    assert [m["role"] for m in history["messages"]] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
    ]
    assert history["messages"][2]["content"] == first
    assert history["messages"][4]["content"] == second


def test_a_non_streaming_turn_is_kept_too(base_url: str, auth_headers: dict[str, str]) -> None:
    cid = str(start(base_url, auth_headers)["id"])
    response = httpx.post(
        f"{base_url}/v1/conversations/{cid}/messages",
        json={"content": "Say hello.", "stream": False, "max_tokens": 8, "temperature": 0},
        headers=auth_headers,
        timeout=120,
    )
    assert response.status_code == 200
    answer = response.json()["choices"][0]["message"]["content"]
    history = httpx.get(f"{base_url}/v1/conversations/{cid}", headers=auth_headers).json()
    assert history["messages"][-1] == {"role": "assistant", "content": answer}


def test_unknown_and_deleted_conversations_get_404(
    base_url: str, auth_headers: dict[str, str]
) -> None:
    cid = str(start(base_url, auth_headers)["id"])
    deleted = httpx.delete(f"{base_url}/v1/conversations/{cid}", headers=auth_headers)
    assert deleted.status_code == 204
    for response in (
        httpx.get(f"{base_url}/v1/conversations/{cid}", headers=auth_headers),
        httpx.delete(f"{base_url}/v1/conversations/{cid}", headers=auth_headers),
        httpx.post(
            f"{base_url}/v1/conversations/{cid}/messages",
            json={"content": "hi"},
            headers=auth_headers,
        ),
    ):
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "conversation_not_found"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"content": ""}, "invalid_request"),
        ({"content": "hi", "colour": "blue"}, "invalid_request"),
        ({"content": "x" * 40_000}, "message_too_long"),
    ],
    ids=["empty", "unknown-field", "too-long"],
)
def test_bad_messages_get_422(
    base_url: str, auth_headers: dict[str, str], body: dict[str, object], code: str
) -> None:
    cid = str(start(base_url, auth_headers)["id"])
    response = httpx.post(
        f"{base_url}/v1/conversations/{cid}/messages", json=body, headers=auth_headers
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == code


def test_a_second_turn_while_one_is_answered_gets_409_and_a_left_turn_is_not_kept(
    base_url: str, auth_headers: dict[str, str]
) -> None:
    cid = str(start(base_url, auth_headers)["id"])
    url = f"{base_url}/v1/conversations/{cid}/messages"
    long_turn = {"content": "Tell me a long story.", "max_tokens": 500, "ignore_eos": True}
    with httpx.stream("POST", url, json=long_turn, headers=auth_headers, timeout=60) as first:
        assert first.status_code == 200
        lines = first.iter_lines()
        next(lines)
        busy = httpx.post(url, json={"content": "hi"}, headers=auth_headers)
        assert busy.status_code == 409
        assert busy.json()["error"]["code"] == "conversation_busy"
    # The client left mid-answer: the history is as it was, and the lock is released.
    history = httpx.get(f"{base_url}/v1/conversations/{cid}", headers=auth_headers).json()
    assert [m["role"] for m in history["messages"]] == ["system"]
    text, _ = say(base_url, cid, auth_headers, "Say hi.", max_tokens=4)
    assert text


@pytest.fixture(scope="module")
def tight_url(make_settings: Callable[..., Settings]) -> Iterator[str]:
    settings = make_settings(max_context_tokens=320, default_max_tokens=32)
    with serve(create_app(settings)) as url:
        yield url


def test_long_conversations_are_trimmed_to_the_context(
    tight_url: str, auth_headers: dict[str, str]
) -> None:
    cid = str(start(tight_url, auth_headers)["id"])
    filler = "Here is a fact about the ocean: it covers most of the planet. " * 3
    prompts = []
    for turn in range(6):
        _, usage = say(tight_url, cid, auth_headers, f"{turn}. {filler}", max_tokens=16)
        prompts.append(usage["prompt_tokens"])
    # Every prompt fits the context with room for the answer, though the history grew
    # past it: the oldest turns were left out of the prompt (the store keeps them all).
    assert max(prompts) <= 320 - 16
    history = httpx.get(f"{tight_url}/v1/conversations/{cid}", headers=auth_headers).json()
    assert len(history["messages"]) == 1 + 2 * 6
    per_turn = prompts[1] - prompts[0]
    assert prompts[-1] < prompts[0] + 5 * per_turn, "the prompt kept growing with the history"


def test_trimming_keeps_the_system_prompt_and_whole_turns(
    make_settings: Callable[..., Settings], model_dir: Path
) -> None:
    llm = LLM(make_settings(max_context_tokens=200), Metrics())
    asyncio.run(llm.start())
    try:
        messages = [{"role": "system", "content": "Be brief."}]
        for turn in range(10):
            messages.append({"role": "user", "content": f"Question {turn}: " + "words " * 20})
            messages.append({"role": "assistant", "content": f"Answer {turn}: " + "more " * 20})
        messages.append({"role": "user", "content": "Last question?"})
        kept, ids = fit_history(llm, messages, reserve=40)
        assert kept[0] == messages[0]
        assert kept[1]["role"] == "user"
        assert kept[-1] == messages[-1]
        assert kept[1:] == messages[-len(kept) + 1 :]
        assert len(ids) <= 200 - 40
        assert len(ids) == len(llm.prompt_ids(kept))
    finally:
        asyncio.run(llm.stop())
