"""Retrieval: the question embedded, the closest chunks found, optionally re-ranked."""

from __future__ import annotations

import time

import numpy as np

from rag_qa.embeddings import Embedder
from rag_qa.observability import Metrics
from rag_qa.store import Hit, SearchFilter, VectorStore

# Maximal marginal relevance: how much relevance outweighs novelty, and how many
# candidates per result it chooses from.
MMR_LAMBDA = 0.7
MMR_CANDIDATES = 4


class Retriever:
    def __init__(self, embedder: Embedder, store: VectorStore, metrics: Metrics) -> None:
        self.embedder = embedder
        self.store = store
        self.metrics = metrics

    def search(
        self, question: str, k: int, where: SearchFilter | None = None, *, rerank: str = "none"
    ) -> list[Hit]:
        """Blocking: the k best chunks for the question, best first."""
        (vector,) = self.embedder.embed([question], purpose="query")
        fetch = k * MMR_CANDIDATES if rerank == "mmr" else k
        started = time.perf_counter()
        hits = self.store.search(vector, fetch, where)
        self.metrics.rag_retrieval_duration.observe(time.perf_counter() - started)
        if hits:
            self.metrics.rag_top_score.observe(hits[0].score)
        if rerank == "mmr":
            hits = mmr(hits, k)
        return hits[:k]


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
