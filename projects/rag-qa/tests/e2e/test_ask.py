"""Questions: retrieval, the grounded answer streamed sentence by sentence with the sources
the service attributes to each, and abstention when the documents do not say."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from rag_qa.app import create_app
from rag_qa.settings import Settings
from tests.conftest import CORPUS, sse_events, upload
from tests.live_server import serve
from tests.metrics import metric_samples, metric_value

DOCUMENTS = ["employee-handbook.md", "island-travel-guide.html", "rainbow-primer.txt"]
LEAVE = "How many days of paid annual leave does a full-time employee get?"
UNRELATED = "What is the boiling point of tungsten?"
STRICT = 0.6
# On the handbook's topic, which says nothing of it: its chunks score high all the same.
NOT_IN_THE_HANDBOOK = "What pension contribution does the company pay for each employee?"
# Two facts from two sections of the handbook.
TWO_FACTS = (
    "How many days of paid annual leave does a full-time employee get, and who has to "
    "approve an expense above 500 euros in advance?"
)


@pytest.fixture(scope="module")
def ids(base_url: str, auth_headers: dict[str, str]) -> Iterator[dict[str, str]]:
    found = {}
    for name in DOCUMENTS:
        response = upload(base_url, auth_headers, name, (CORPUS / name).read_bytes())
        assert response.status_code == 201, response.text
        found[name] = response.json()["document"]["id"]
    return found


@pytest.fixture(scope="module")
def strict_url(
    make_settings: Callable[..., Settings], auth_headers: dict[str, str]
) -> Iterator[str]:
    """A service that abstains below answerability 0.6, with the handbook stored."""
    with serve(create_app(make_settings(min_answerability=STRICT)), timeout_s=120) as url:
        name = DOCUMENTS[0]
        response = upload(url, auth_headers, name, (CORPUS / name).read_bytes())
        assert response.status_code == 201, response.text
        yield url


def ask(base_url: str, headers: dict[str, str], **body: object) -> httpx.Response:
    return httpx.post(base_url + "/v1/ask", json=body, headers=headers, timeout=120)


def test_search_finds_the_passage_first(
    base_url: str, auth_headers: dict[str, str], ids: dict[str, str]
) -> None:
    response = httpx.post(
        base_url + "/v1/search", json={"query": LEAVE, "top_k": 3}, headers=auth_headers
    )
    assert response.status_code == 200
    results = response.json()["results"]
    assert len(results) == 3
    assert results[0]["document_id"] == ids["employee-handbook.md"]
    assert "26 days of paid annual leave" in results[0]["text"]
    assert [r["number"] for r in results] == [1, 2, 3]
    assert results[0]["score"] >= results[1]["score"] >= results[2]["score"]


def test_a_filter_keeps_to_the_documents_named(
    base_url: str, auth_headers: dict[str, str], ids: dict[str, str]
) -> None:
    island = ids["island-travel-guide.html"]
    response = httpx.post(
        base_url + "/v1/search",
        json={"query": LEAVE, "top_k": 4, "filter": {"document_ids": [island]}},
        headers=auth_headers,
    )
    assert {r["document_id"] for r in response.json()["results"]} == {island}
    by_type = httpx.post(
        base_url + "/v1/search",
        json={"query": LEAVE, "filter": {"content_types": ["text/plain"]}},
        headers=auth_headers,
    )
    assert {r["document_id"] for r in by_type.json()["results"]} == {ids["rainbow-primer.txt"]}


def test_mmr_reranking_returns_distinct_chunks(
    base_url: str, auth_headers: dict[str, str], ids: dict[str, str]
) -> None:
    response = httpx.post(
        base_url + "/v1/search",
        json={"query": LEAVE, "top_k": 4, "rerank": "mmr"},
        headers=auth_headers,
    )
    results = response.json()["results"]
    assert len(results) == 4
    assert len({(r["document_id"], r["position"]) for r in results}) == 4
    assert "26 days of paid annual leave" in results[0]["text"]


def test_a_question_that_asks_two_things_finds_both_passages(
    base_url: str, auth_headers: dict[str, str], ids: dict[str, str]
) -> None:
    response = httpx.post(
        base_url + "/v1/search", json={"query": TWO_FACTS, "top_k": 5}, headers=auth_headers
    )
    texts = " ".join(r["text"] for r in response.json()["results"])
    assert "26 days of paid annual leave" in texts
    assert "must be approved in advance by the finance director" in texts


def test_ask_streams_each_sentence_with_its_citations_then_the_sources(
    base_url: str, auth_headers: dict[str, str], ids: dict[str, str]
) -> None:
    response = ask(base_url, auth_headers, question=LEAVE, max_tokens=48, top_k=3)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    names = [name for name, _ in events]
    assert names[-2:] == ["sources", "done"]
    assert set(names[:-2]) == {"answer"}
    parts = [data for name, data in events if name == "answer"]
    # Each sentence arrives with the sources that support it, its markers in its text.
    for part in parts:
        assert part["supported"] is True
        numbers = part["sources"]
        assert isinstance(numbers, list)
        assert numbers
        assert str(part["text"]).rstrip().endswith("".join(f"[{n}]" for n in numbers))
    sources = events[-2][1]
    assert sources["answered"] is True
    answerability = sources["answerability"]
    assert isinstance(answerability, dict)
    assert answerability["score"] >= Settings.model_fields["min_answerability"].default
    listed = sources["sources"]
    assert isinstance(listed, list)
    assert listed[0]["document_id"] == ids["employee-handbook.md"]
    assert {"number", "document_id", "title", "position", "score", "cited", "text"} <= set(
        listed[0]
    )
    cited = {number for part in parts for number in part["sources"]}  # type: ignore[attr-defined]
    assert {s["number"] for s in listed if s["cited"]} == cited
    assert cited, "an answered question cites at least one source"
    # What is cited holds what the answer says: the passage with the leave rule.
    assert any("26 days" in s["text"] for s in listed if s["cited"])
    done = events[-1][1]
    assert done["finish_reason"] in {"stop", "length"}
    usage = done["usage"]
    assert isinstance(usage, dict)
    assert 0 < usage["completion_tokens"] <= 48


def test_stream_and_json_give_the_same_greedy_answer(
    base_url: str, auth_headers: dict[str, str], ids: dict[str, str]
) -> None:
    question = "Which instrument did the lighthouse keeper use?"
    streamed = ask(base_url, auth_headers, question=LEAVE, max_tokens=24)
    text = "".join(str(d["text"]) for n, d in sse_events(streamed) if n == "answer")
    plain = ask(base_url, auth_headers, question=LEAVE, max_tokens=24, stream=False)
    assert plain.status_code == 200
    body = plain.json()
    assert body["answer"] == text
    assert body["answered"] is True
    assert body["sources"][0]["document_id"] == ids["employee-handbook.md"]
    assert body["usage"]["completion_tokens"] <= 24
    assert question  # the greedy answer is deterministic whatever the question


@pytest.mark.parametrize("question", [UNRELATED, NOT_IN_THE_HANDBOOK])
def test_a_question_the_documents_do_not_answer_is_abstained_on_without_generating(
    strict_url: str, auth_headers: dict[str, str], question: str
) -> None:
    before = httpx.get(strict_url + "/metrics").text
    response = ask(strict_url, auth_headers, question=question)
    events = sse_events(response)
    assert [name for name, _ in events] == ["answer", "sources", "done"]
    assert "could not find" in str(events[0][1]["text"])
    assert events[1][1]["answered"] is False
    assert events[1][1]["sources"] == []
    assert events[2][1]["finish_reason"] == "no_answer"
    plain = ask(strict_url, auth_headers, question=question, stream=False).json()
    assert plain["answered"] is False
    assert plain["sources"] == []
    if question == NOT_IN_THE_HANDBOOK:
        # The handbook's chunks were found (above min_score) and judged not to answer.
        judged = plain["answerability"]
        assert judged["score"] < STRICT
        assert "pension" in judged["missing"]
    else:
        assert plain["answerability"] is None  # nothing above min_score to judge
    after = httpx.get(strict_url + "/metrics").text
    no_answers = [
        sum(value for _, value in metric_samples(text, "rag_questions", outcome="no_answer"))
        for text in (before, after)
    ]
    assert no_answers[1] - no_answers[0] == 2
    assert metric_value(after, "llm_completion_tokens_total") == metric_value(
        before, "llm_completion_tokens_total"
    ), "the model was asked anyway"


def test_the_same_question_is_answered_where_the_threshold_allows(
    strict_url: str, auth_headers: dict[str, str]
) -> None:
    answered = ask(strict_url, auth_headers, question=LEAVE, stream=False).json()
    assert answered["answered"] is True
    assert answered["answerability"]["score"] >= STRICT
    assert "26" in answered["answer"]


def test_question_metrics(base_url: str, auth_headers: dict[str, str], ids: dict[str, str]) -> None:
    ask(base_url, auth_headers, question=LEAVE, max_tokens=8)
    metrics = httpx.get(base_url + "/metrics").text
    assert metric_value(metrics, "rag_retrieval_duration_seconds_count") >= 1
    assert metric_value(metrics, "rag_top_score_count") >= 1
    assert metric_value(metrics, "rag_questions_total", outcome="answered") >= 1
    assert metric_value(metrics, "rag_embedding_duration_seconds_count", purpose="query") >= 1
    assert metric_value(metrics, "llm_time_to_first_token_seconds_count") >= 1


@pytest.mark.parametrize(
    ("path", "body", "code"),
    [
        ("/v1/ask", {"question": "x" * 1001}, "question_too_long"),
        ("/v1/search", {"query": "x" * 1001}, "question_too_long"),
        ("/v1/ask", {"question": ""}, "invalid_request"),
        ("/v1/ask", {"question": "hi", "top_k": 21}, "top_k_too_large"),
        ("/v1/ask", {"question": "hi", "top_k": 0}, "invalid_request"),
        (
            "/v1/ask",
            {"question": "hi", "filter": {"document_ids": ["x' OR 1=1"]}},
            "invalid_request",
        ),
        (
            "/v1/ask",
            {"question": "hi", "filter": {"content_types": ["image/png"]}},
            "invalid_request",
        ),
        ("/v1/ask", {"question": "hi", "unknown": 1}, "invalid_request"),
        ("/v1/ask", {"question": "hi", "seed": 2**64}, "invalid_request"),
        ("/v1/ask", {"question": "\ud800 a lone surrogate"}, "invalid_request"),
        ("/v1/search", {"query": "\udfff"}, "invalid_request"),
        ("/v1/search", {"question": "wrong field"}, "invalid_request"),
    ],
)
def test_bad_questions_get_422(
    base_url: str, auth_headers: dict[str, str], path: str, body: dict[str, object], code: str
) -> None:
    # Encoded here: httpx's own JSON encoder refuses the lone surrogates a client can send.
    headers = {**auth_headers, "content-type": "application/json"}
    response = httpx.post(base_url + path, content=json.dumps(body).encode(), headers=headers)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code


def test_a_non_json_body_is_422(base_url: str, auth_headers: dict[str, str]) -> None:
    response = httpx.post(
        base_url + "/v1/ask",
        content=b"question=hi",
        headers={"content-type": "application/json", **auth_headers},
    )
    assert response.status_code == 422
