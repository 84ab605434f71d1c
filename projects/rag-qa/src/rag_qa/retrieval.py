"""Retrieval: the question embedded, the closest chunks found, optionally re-ranked.

A question that asks two things ("how many days, and by when must they be used?") is also
searched clause by clause, and the lists interleaved, so that each fact's passage is among
the k found even when the two sit in different sections.
"""

from __future__ import annotations

import itertools
import re
import time

import numpy as np

from rag_qa.embeddings import Embedder
from rag_qa.observability import Metrics
from rag_qa.store import Hit, SearchFilter, VectorStore

# Maximal marginal relevance: how much relevance outweighs novelty, and how many
# candidates per result it chooses from.
MMR_LAMBDA = 0.7
MMR_CANDIDATES = 4

# Where a question asks a second thing: another question, a clause after ", and" or ";",
# or "and" before a question word.
_CLAUSE_BREAK = re.compile(
    r"\?\s+(?=\S)|;\s*|,\s*(?:and|as well as|also)\s+|\s+and\s+(?=(?:what|which|who|whom|"
    r"whose|when|where|why|how|is|are|was|were|does|do|did|can|must|should|will)\b)",
    re.IGNORECASE,
)
MIN_CLAUSE_WORDS = 3


class Retriever:
    def __init__(self, embedder: Embedder, store: VectorStore, metrics: Metrics) -> None:
        self.embedder = embedder
        self.store = store
        self.metrics = metrics

    def search(
        self, question: str, k: int, where: SearchFilter | None = None, *, rerank: str = "none"
    ) -> list[Hit]:
        """Blocking: the k best chunks for the question, best first."""
        queries = [question, *clauses(question)]
        vectors = self.embedder.embed(queries, purpose="query")
        fetch = k * MMR_CANDIDATES if rerank == "mmr" else k
        started = time.perf_counter()
        found = [self.store.search(vector, fetch, where) for vector in vectors]
        self.metrics.rag_retrieval_duration.observe(time.perf_counter() - started)
        hits = interleave(found)
        if hits:
            self.metrics.rag_top_score.observe(max(hit.score for hit in hits))
        if rerank == "mmr":
            hits = mmr(hits, k)
        return hits[:k]


def clauses(question: str) -> list[str]:
    """The separate things a question asks, when it asks more than one; else none."""
    parts = [part.strip(" ,?") for part in _CLAUSE_BREAK.split(question)]
    parts = [part for part in parts if len(part.split()) >= MIN_CLAUSE_WORDS]
    return parts if len(parts) > 1 else []


def interleave(lists: list[list[Hit]]) -> list[Hit]:
    """The first of each list, then the second of each, ...: each chunk once."""
    seen: set[tuple[str, int]] = set()
    merged = []
    for hit in itertools.chain.from_iterable(itertools.zip_longest(*lists)):
        if hit is not None and (hit.document_id, hit.position) not in seen:
            seen.add((hit.document_id, hit.position))
            merged.append(hit)
    return merged


def mmr(hits: list[Hit], k: int, weight: float = MMR_LAMBDA) -> list[Hit]:
    """Picks k hits one by one, each the most relevant that is least like those picked:
    near-duplicate chunks (the same passage in two documents) give way to new ones."""
    if len(hits) <= 1 or any(hit.vector is None for hit in hits):
        return hits[:k]
    vectors = np.stack([hit.vector for hit in hits if hit.vector is not None])
    similarity = vectors @ vectors.T
    chosen = [0]
    left = list(range(1, len(hits)))
    while left and len(chosen) < k:
        best = max(
            left,
            key=lambda i: weight * hits[i].score - (1 - weight) * similarity[i, chosen].max(),
        )
        chosen.append(best)
        left.remove(best)
    return [hits[i] for i in chosen]
