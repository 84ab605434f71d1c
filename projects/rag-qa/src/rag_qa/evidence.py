"""The evidence for one question: the retrieved passages, split into sentences and
embedded once, then read three ways: whether they answer the question at all
(answerability.py), which passage supports each sentence of an answer (attribution.py),
and which of their sentences answer it best when the model's answer is unsupported.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from rag_qa.embeddings import Embedder
from rag_qa.retrieval import clauses
from rag_qa.sentences import key_terms, numbers_in, split_sentences
from rag_qa.store import Hit


@dataclass(frozen=True, eq=False)  # by identity: two equal chunks are still two sources
class Passage:
    """A retrieved chunk as evidence: numbered from 1 as the prompt numbers it."""

    number: int
    hit: Hit
    sentences: list[str]
    terms: set[str]  # its key terms, with its title's and headings'
    specifics: set[str]  # its numbers and the stems of its words, title and headings too


@dataclass(frozen=True)
class SourceSentence:
    passage: Passage
    text: str
    terms: set[str]


class Evidence:
    def __init__(
        self,
        embedder: Embedder,
        question: str,
        hits: list[Hit],
        question_vector: np.ndarray,
        sentences: list[SourceSentence],
        vectors: np.ndarray,
    ) -> None:
        self.embedder = embedder
        self.question = question
        self.hits = hits
        self.question_vector = question_vector
        self.question_terms = key_terms(question)
        self.sentences = sentences
        self.vectors = vectors  # one row per sentence, unit length
        self.passages = list(dict.fromkeys(sentence.passage for sentence in sentences))
        # The question and, when it asks several things, each of them: key terms, vector.
        self.asked = [(self.question_terms, question_vector)]

    @classmethod
    def gather(cls, embedder: Embedder, question: str, hits: list[Hit]) -> Evidence:
        """Blocking: the question and every sentence of `hits` embedded in one batch."""
        sentences = []
        for number, hit in enumerate(hits, start=1):
            texts = split_sentences(hit.text) or [hit.text]
            label = f"{hit.title} {hit.headings}"
            terms = [key_terms(text) for text in texts]
            held = key_terms(label).union(*terms)
            numbers = set(numbers_in(f"{label} {hit.text}"))
            passage = Passage(number, hit, texts, held, held | numbers)
            pairs = zip(texts, terms, strict=True)
            sentences += [SourceSentence(passage, text, found) for text, found in pairs]
        asked = [question, *clauses(question)]
        vectors = embedder.embed([*asked, *(s.text for s in sentences)], purpose="query")
        evidence = cls(embedder, question, hits, vectors[0], sentences, vectors[len(asked) :])
        evidence.asked = [(key_terms(text), vectors[i]) for i, text in enumerate(asked)]
        return evidence

    def similarities(self, vector: np.ndarray) -> np.ndarray:
        """Cosine similarity of `vector` to each sentence."""
        if not self.sentences:
            return np.zeros(0, dtype=np.float32)
        return self.vectors @ vector

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.embedder.embed(texts, purpose="query")
