"""Sentences and key terms of a text: the units answerability and attribution compare.

A key term is a word that carries the question's meaning (not "what", "the", "does"),
reduced to a rough stem so that "holidays" matches "holiday" and "approved" matches
"approval"; numbers are kept whole. Nothing here knows a language model: it is what a
reader does when they check a claim against a page.
"""

from __future__ import annotations

import re

# A sentence ends at . ! or ? before a capital, a digit or a bracket, or at a line break.
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[\"'(\[]?[A-Z0-9])|\s*\n+\s*")
_NUMBER = re.compile(r"\d+(?:[.,:]\d+)*")
_WORD = re.compile(r"[A-Za-z0-9]+(?:[-'.][A-Za-z0-9]+)*")
_SUFFIXES = ("ations", "ation", "ments", "ment", "ings", "ing", "ies", "ied", "ed", "es", "s")

_STOPWORDS = """
    a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing done down during
    each either else ever every few for from further get gets getting got had has have
    having he her here hers him his how however i if in into is it its itself just least
    less like made make makes many may me might more most much must my near need needs no
    nor not now of off often on once one only onto or other others our out over own per
    please quite rather really said same say says shall she should since so some such than
    that the their theirs them then there these they this those though through to too
    under until up upon us use used uses using very was we were what whatever when whenever
    where whereas whether which while who whom whose why will with within without would yet
    you your yours tell know kind sort way ways thing things someone something anyone
    anything
"""
STOPWORDS = frozenset(_STOPWORDS.split())


def split_sentences(text: str) -> list[str]:
    """The text's sentences, in order, stripped; list items and lines count as sentences."""
    return [part.strip() for part in _SENTENCE_END.split(text) if part and part.strip()]


def complete_sentences(text: str) -> tuple[list[str], str]:
    """The sentences of a text still being written that are surely complete (another has
    begun after them), and the rest as it is, whitespace kept."""
    ends = list(_SENTENCE_END.finditer(text))
    if not ends:
        return [], text
    last = ends[-1]
    return split_sentences(text[: last.start()]), text[last.end() :]


def stem(word: str) -> str:
    word = word.lower().removesuffix("'s")
    if word.isdigit():
        return word
    for suffix in _SUFFIXES:
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            word = word[: -len(suffix)]
            break
    return word.rstrip("e") if len(word) > 4 else word


def key_terms(text: str) -> set[str]:
    """The stems of the words that carry meaning: no stopwords, no one-letter words."""
    terms = set()
    for word in _WORD.findall(text):
        lowered = word.lower()
        if lowered in STOPWORDS or (len(lowered) < 2 and not lowered.isdigit()):
            continue
        terms.add(stem(lowered))
        # "full-time" is also "full" and "time"; "v2.3" also "v2" and "3".
        for part in re.split(r"[-'.]", lowered):
            if part and part != lowered and part not in STOPWORDS and len(part) > 1:
                terms.add(stem(part))
    return terms


def specifics(text: str) -> set[str]:
    """The numbers and names a sentence states: what a claim gets wrong when it is made up.
    Numbers as written ("26", "9:30", "2.3"), names as the key-term stems of capitalised
    words that do not start a sentence."""
    found = set(numbers_in(text))
    for sentence in split_sentences(text):
        words = _WORD.findall(sentence)
        for word in words[1:]:
            if word[0].isupper() and word.lower() not in STOPWORDS:
                found.add(stem(word))
    return found


def numbers_in(text: str) -> list[str]:
    return _NUMBER.findall(text)


def coverage(terms: set[str], against: set[str]) -> float:
    """The share of `terms` found in `against`; 1.0 for no terms."""
    return len(terms & against) / len(terms) if terms else 1.0
