"""Citations by construction: each sentence of an answer attributed, by the service, to the
passage that supports it, rather than trusting a small model to write `[n]` markers.

A passage supports a sentence by the mean of two measures: the best cosine between the
sentence and one of the passage's sentences, and the share of the sentence's key terms the
passage holds; and not at all when the sentence states a number or a name the passage
does not (a made-up "18 weeks" shares every other word with the passage it contradicts).
The best-supporting passage is cited when that mean reaches `min_support` and the passage
is one that answers the question (its relevance within RELEVANCE_MARGIN of the best
passage's: a true sentence from a passage beside the point is no answer);
a sentence no passage supports is unsupported (flagged, or dropped, per
`unsupported_sentences`), and so is one that says nothing the question did not: a question,
or the question restated, which a small model often writes first and which shares every
word with the passage that answers it. When no sentence of the model's answer is
supported, the answer is extracted instead: the passages' sentences closest to the
question, each cited.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from rag_qa.evidence import Evidence, Passage, SourceSentence
from rag_qa.sentences import coverage, key_terms, numbers_in, specifics

# Markers a model writes itself: the service cites, so they are removed.
_MARKER = re.compile(r"\s*\[\d{1,2}(?:\s*,\s*\d{1,2})*\]")
# The prompt's own labels, which a model copies before what it restates.
_LABEL = re.compile(r"^(?:question|answer|q|a)\s*:\s*", re.IGNORECASE)

# How far below the most relevant passage a cited one may be, in relevance to the question.
RELEVANCE_MARGIN = 0.05
# Sentences an extractive answer takes: the best, and those close behind it.
EXTRACTIVE_SENTENCES = 2
EXTRACTIVE_MARGIN = 0.05


@dataclass(frozen=True)
class AnswerSentence:
    text: str  # as the model wrote it, without its own markers
    sources: tuple[int, ...]  # the numbers of the passages that support it
    support: float

    @property
    def supported(self) -> bool:
        return bool(self.sources)

    def cited(self) -> str:
        """The sentence with its citation markers, as the answer shows it."""
        markers = "".join(f"[{number}]" for number in self.sources)
        return f"{self.text} {markers}" if markers else self.text


def strip_markers(text: str) -> str:
    return _MARKER.sub("", text)


def attribute(evidence: Evidence, sentences: list[str], min_support: float) -> list[AnswerSentence]:
    """Blocking: each sentence with the passage that supports it best, if one does."""
    texts = [strip_markers(sentence).strip() for sentence in sentences]
    texts = [text for text in texts if text]
    if not texts:
        return []
    if not evidence.sentences:
        return [AnswerSentence(text, (), 0.0) for text in texts]
    similarities = evidence.vectors @ evidence.embed(texts).T  # (source sentences, answer)
    answering = answering_passages(evidence)
    return [
        AnswerSentence(text, (), 0.0)
        if says_nothing_new(evidence.question, text)
        else _attribute_one(evidence, answering, text, similarities[:, i], min_support)
        for i, text in enumerate(texts)
    ]


def says_nothing_new(question: str, sentence: str) -> bool:
    """Whether `sentence` is a question, or holds no key term and no number that the
    question does not: no answer, however well a passage matches it."""
    text = _LABEL.sub("", sentence.strip())
    if text.endswith("?"):
        return True
    new_terms = key_terms(text) - key_terms(question)
    new_numbers = set(numbers_in(text)) - set(numbers_in(question))
    return not new_terms and not new_numbers


def answering_passages(evidence: Evidence) -> list[Passage]:
    """The passages that answer the question, or one of the things it asks: their
    relevance within RELEVANCE_MARGIN of the most relevant passage's."""
    chosen: set[int] = set()
    for terms, vector in evidence.asked:
        relevance: dict[int, float] = {}
        for sentence, score in zip(
            evidence.sentences, sentence_scores(evidence, terms, vector), strict=True
        ):
            number = sentence.passage.number
            relevance[number] = max(relevance.get(number, 0.0), score)
        best = max(relevance.values())
        chosen |= {n for n, score in relevance.items() if score >= best - RELEVANCE_MARGIN}
    return [passage for passage in evidence.passages if passage.number in chosen]


def sentence_scores(evidence: Evidence, terms: set[str], vector: np.ndarray) -> list[float]:
    """How well each source sentence answers a question: the mean of its cosine to the
    question and the share of the question's key terms it holds."""
    similarity = evidence.similarities(vector)
    return [
        (float(similarity[i]) + coverage(terms, sentence.terms)) / 2
        for i, sentence in enumerate(evidence.sentences)
    ]


def _attribute_one(
    evidence: Evidence,
    answering: list[Passage],
    text: str,
    similarity: np.ndarray,
    min_support: float,
) -> AnswerSentence:
    """The passage that supports `text` best; or, for a sentence that joins two facts, the
    two best whose numbers and names together are the sentence's."""
    terms = key_terms(text)
    stated = specifics(text)
    supports = []
    for passage in answering:
        rows = [i for i, s in enumerate(evidence.sentences) if s.passage is passage]
        support = (float(similarity[rows].max()) + coverage(terms, passage.terms)) / 2
        supports.append((support, passage))
    supports.sort(key=lambda pair: pair[0], reverse=True)
    holding = [(support, p) for support, p in supports if stated <= p.specifics]
    if holding:
        support, passage = holding[0]
        cited = (passage.number,) if support >= min_support else ()
        return AnswerSentence(text, cited, round(support, 4))
    if len(supports) > 1:
        (_, one), (second, other) = supports[:2]
        if stated <= one.specifics | other.specifics and second >= min_support:
            return AnswerSentence(text, tuple(sorted((one.number, other.number))), round(second, 4))
    return AnswerSentence(text, (), 0.0)


def extract(evidence: Evidence) -> list[AnswerSentence]:
    """The passages' sentences that answer the question best, each citing its passage:
    for a question that asks several things, the best sentence for each; else the best by
    similarity and key-term overlap, and up to EXTRACTIVE_SENTENCES - 1 more within
    EXTRACTIVE_MARGIN of it. In the order the passages give them."""
    if not evidence.sentences:
        return []
    asked = evidence.asked[1:] or evidence.asked
    chosen: dict[int, float] = {}
    for terms, vector in asked:
        scores = sentence_scores(evidence, terms, vector)
        ranked = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)
        best = scores[ranked[0]]
        take = ranked[:1] if len(asked) > 1 else ranked[:EXTRACTIVE_SENTENCES]
        for i in take:
            if scores[i] >= best - EXTRACTIVE_MARGIN:
                chosen[i] = max(chosen.get(i, 0.0), scores[i])
    return [_extracted(evidence.sentences[i], chosen[i]) for i in sorted(chosen)]


def _extracted(sentence: SourceSentence, score: float) -> AnswerSentence:
    return AnswerSentence(sentence.text, (sentence.passage.number,), round(score, 4))
