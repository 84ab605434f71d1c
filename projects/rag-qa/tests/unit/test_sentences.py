"""Sentences and key terms: the units answerability and attribution compare."""

from __future__ import annotations

from rag_qa.answers import Draft
from rag_qa.sentences import complete_sentences, coverage, key_terms, split_sentences


def test_sentences_end_at_stops_before_a_capital_and_at_line_breaks() -> None:
    text = "Leave is 26 days. Carried days expire by 31 March! Why?\n- Ask your manager"
    assert split_sentences(text) == [
        "Leave is 26 days.",
        "Carried days expire by 31 March!",
        "Why?",
        "- Ask your manager",
    ]
    # A decimal point or a version is not an end.
    assert split_sentences("Version 2.3 adds Sedge. It is 1.5 times faster.") == [
        "Version 2.3 adds Sedge.",
        "It is 1.5 times faster.",
    ]


def test_a_sentence_is_complete_only_once_the_next_has_begun() -> None:
    assert complete_sentences("The beacon flashes twice. It is") == (
        ["The beacon flashes twice."],
        "It is",
    )
    # The end may still be an abbreviation or a number: wait for what follows.
    assert complete_sentences("The beacon flashes twice. ") == ([], "The beacon flashes twice. ")
    complete, rest = complete_sentences("One. Two. Thr")
    assert (complete, rest) == (["One.", "Two."], "Thr")


def test_key_terms_drop_question_words_and_match_word_forms() -> None:
    question = key_terms("How many paid holidays does a full-time employee get?")
    passage = key_terms("Every full-time employee receives 26 days of paid annual holiday.")
    assert "how" not in question
    assert "does" not in question
    assert {"paid", "holiday", "employ", "full-tim", "full", "time"} <= question
    assert coverage(question, passage) == 1.0
    assert coverage(key_terms("What is the parental leave?"), passage) == 0.0
    assert coverage(set(), passage) == 1.0


def test_a_draft_gives_each_sentence_once_and_stops_when_it_has_said_enough() -> None:
    draft = Draft(max_sentences=2)
    given = []
    for piece in ["Employees get ", "26 days. Carried", " days expire by 31 March. ", "They also"]:
        given += draft.feed(piece)
    assert given == ["Employees get 26 days.", "Carried days expire by 31 March."]
    assert draft.done
    assert draft.finish() == []


def test_a_draft_stops_at_a_repeated_sentence_and_at_a_loop() -> None:
    draft = Draft(max_sentences=5)
    assert draft.feed("The fee is 2 euros. The fee is 2 euros. Then") == ["The fee is 2 euros."]
    assert draft.done

    looping = Draft(max_sentences=5)
    looping.feed("the bins and the bins and the bins and the bins and the bins and")
    assert looping.done
    assert looping.finish() == []


def test_the_end_of_a_draft_is_its_last_sentence() -> None:
    draft = Draft(max_sentences=3)
    assert draft.feed("It opens at 9") == []
    assert draft.finish() == ["It opens at 9"]
