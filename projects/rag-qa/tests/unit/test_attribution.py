"""Answerability and attribution with the real embedder, on passages written here."""

from __future__ import annotations

import pytest

from rag_qa.answerability import assess
from rag_qa.attribution import attribute, extract, says_nothing_new, strip_markers
from rag_qa.embeddings import Embedder
from rag_qa.evidence import Evidence
from rag_qa.observability import Metrics
from rag_qa.settings import Settings
from rag_qa.store import Hit

LEAVE = (
    "Every full-time employee receives 26 days of paid annual leave in addition to public "
    "holidays. Up to five unused days may be carried into the next year. Carried days "
    "expire if they are not taken by 31 March."
)
TRAVEL = (
    "Staff travel by train where the journey takes less than six hours. First class is "
    "permitted only when a single journey lasts longer than four hours."
)


def hit(position: int, text: str, headings: str) -> Hit:
    return Hit("d" * 32, position, text, headings, "Employee Handbook", "handbook.md", 0.6)


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    embedder = Embedder(Settings(_env_file=None), Metrics())
    embedder.load()
    return embedder


@pytest.fixture(scope="module")
def hits() -> list[Hit]:
    return [hit(0, LEAVE, "Time off"), hit(1, TRAVEL, "Travel")]


def test_a_question_the_passages_answer_scores_above_one_they_do_not(
    embedder: Embedder, hits: list[Hit]
) -> None:
    answered = assess(Evidence.gather(embedder, "How many days of paid leave do I get?", hits))
    unanswered = assess(
        Evidence.gather(embedder, "How many weeks of parental leave do new fathers get?", hits)
    )
    assert answered.score > unanswered.score + 0.1, (answered, unanswered)
    assert {"parental", "father"} <= set(unanswered.missing)


def test_each_sentence_cites_the_passage_that_supports_it(
    embedder: Embedder, hits: list[Hit]
) -> None:
    question = "How many days of paid leave do I get, and when is first class allowed?"
    evidence = Evidence.gather(embedder, question, hits)
    sentences = attribute(
        evidence,
        [
            "You get 26 days of paid leave [2].",
            "First class is allowed on journeys over four hours.",
            "The office cafeteria serves free lunch on Fridays.",
        ],
        min_support=0.6,
    )
    assert [s.sources for s in sentences] == [(1,), (2,), ()]
    # The model's own marker is not trusted: the service's attribution replaces it.
    assert sentences[0].text == "You get 26 days of paid leave."
    assert sentences[0].cited() == "You get 26 days of paid leave. [1]"
    assert not sentences[2].supported
    assert sentences[2].cited() == sentences[2].text


def test_an_extracted_answer_is_the_sentence_closest_to_the_question(
    embedder: Embedder, hits: list[Hit]
) -> None:
    evidence = Evidence.gather(embedder, "By what date must carried leave days be used?", hits)
    extracted = extract(evidence)
    assert any("31 March" in sentence.text for sentence in extracted), extracted
    assert all(sentence.sources == (1,) for sentence in extracted)


def test_markers_a_model_writes_are_removed() -> None:
    assert strip_markers("It is 26 days [1][2], or five [3, 4].") == "It is 26 days, or five."


def test_a_restated_question_is_no_answer(embedder: Embedder, hits: list[Hit]) -> None:
    question = "How many days of paid annual leave does a full-time employee get?"
    evidence = Evidence.gather(embedder, question, hits)
    restated = [
        f"Question: {question}",
        "A full-time employee gets paid annual leave.",
        "How many days of leave do I get?",
    ]
    assert [s.sources for s in attribute(evidence, restated, min_support=0.6)] == [()] * 3
    # One new fact is enough to be an answer, and then the passage that holds it is cited.
    [answer] = attribute(evidence, ["A full-time employee gets 26 days."], min_support=0.6)
    assert answer.sources == (1,)


@pytest.mark.parametrize(
    ("sentence", "new"),
    [
        ("Answer: How long is the trip?", False),
        ("The trip is long.", False),
        ("The trip takes 2 hours.", True),
        ("The ferry takes long.", True),
    ],
)
def test_what_a_sentence_says_beyond_the_question(sentence: str, new: bool) -> None:
    assert says_nothing_new("How long is the trip?", sentence) is not new
