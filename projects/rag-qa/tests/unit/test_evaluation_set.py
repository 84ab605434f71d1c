"""The evaluation set keeps its own rules, so a question added later cannot skew a figure."""

from __future__ import annotations

from functools import cache

from rag_qa.documents import parse
from rag_qa.evaluation import KINDS, load_questions
from tests.conftest import CORPUS, PROJECT

QUESTIONS = load_questions(PROJECT / "eval" / "qa.jsonl")


def _normalised(text: str) -> str:
    """Whitespace as the evaluation compares it: a passage matches a chunk's text exactly."""
    return " ".join(text.split())


@cache
def _visible_text(filename: str) -> str:
    """A document's text as the service parses it: what its chunks are cut from."""
    return _normalised(parse(filename, (CORPUS / filename).read_bytes()).text)


def test_every_kind_is_asked_and_the_questions_are_distinct() -> None:
    assert {question.kind for question in QUESTIONS} == set(KINDS)
    texts = [_normalised(question.question).lower() for question in QUESTIONS]
    assert len(set(texts)) == len(texts)


def test_an_unanswerable_question_has_neither_evidence_nor_an_answer() -> None:
    for question in QUESTIONS:
        if question.kind == "unanswerable":
            assert not question.evidence, question.question
            assert not question.answer, question.question


def test_the_evidence_is_in_its_document_and_the_short_answer_in_the_evidence() -> None:
    corpus = "\n".join(_visible_text(path.name) for path in sorted(CORPUS.iterdir())).lower()
    for question in QUESTIONS:
        if question.kind == "unanswerable":
            continue
        assert question.document, question.question
        assert len(question.evidence) >= (2 if question.kind == "multi" else 1)
        for passage in question.evidence:
            assert _normalised(passage) in _visible_text(question.document), passage
            assert corpus.count(_normalised(passage).lower()) == 1, passage  # one place only
        # The evaluation looks for the short answer in the service's, in any case.
        answer = question.answer.lower()
        assert answer, question.question
        assert len(answer.split()) <= 8, answer  # short, not a passage
        assert any(answer in passage.lower() for passage in question.evidence), answer
