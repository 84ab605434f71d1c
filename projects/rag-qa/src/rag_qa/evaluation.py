"""Retrieval quality on a question set: recall@k and mean reciprocal rank.

Each question names the passage (`evidence`) that answers it. A retrieved chunk is
relevant when its text contains the evidence (whitespace collapsed, case kept), so an
evidence cut in two by chunking counts as a miss. The corpus is ingested into a fresh
store in a temporary folder, through the service's own ingestion path.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from rag_qa.embeddings import Embedder
from rag_qa.ingestion import open_ingestor
from rag_qa.observability import Metrics
from rag_qa.retrieval import Retriever
from rag_qa.settings import Settings


@dataclass(frozen=True)
class Question:
    question: str
    document: str
    evidence: str


@dataclass(frozen=True)
class Outcome:
    question: Question
    rank: int | None  # 1-based rank of the first relevant chunk, None when not in the top k
    top_score: float


@dataclass(frozen=True)
class Report:
    k: int
    documents: int
    chunks: int
    outcomes: list[Outcome]

    @property
    def recall(self) -> float:
        return sum(o.rank is not None for o in self.outcomes) / len(self.outcomes)

    @property
    def mrr(self) -> float:
        return sum(1 / o.rank for o in self.outcomes if o.rank) / len(self.outcomes)

    def summary(self) -> str:
        return (
            f"{len(self.outcomes)} questions over {self.documents} documents "
            f"({self.chunks} chunks): recall@{self.k} {self.recall:.3f}, MRR {self.mrr:.3f}"
        )


def load_questions(path: Path) -> list[Question]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [Question(**json.loads(line)) for line in lines if line.strip()]


def evaluate(
    settings: Settings,
    corpus: Path,
    questions: list[Question],
    k: int = 5,
    *,
    embedder: Embedder | None = None,
) -> Report:
    """`embedder` (loaded) in place of the one the settings describe: to score a model."""
    with tempfile.TemporaryDirectory(prefix="rag-eval-") as folder:
        settings = settings.model_copy(
            update={"lancedb_path": Path(folder), "vector_store": "lancedb"}
        )
        metrics = Metrics()
        ingestor = open_ingestor(settings, metrics, embedder)
        files = sorted(p for p in corpus.iterdir() if p.is_file())
        for path in files:
            ingestor.ingest(path.name, path.read_bytes())
        retriever = Retriever(ingestor.embedder, ingestor.store, metrics)
        outcomes = []
        for question in questions:
            hits = retriever.search(question.question, k)
            evidence = _normalise(question.evidence)
            rank = next(
                (i for i, hit in enumerate(hits, start=1) if evidence in _normalise(hit.text)),
                None,
            )
            outcomes.append(Outcome(question, rank, hits[0].score if hits else 0.0))
        return Report(k, len(files), ingestor.store.count(), outcomes)


def _normalise(text: str) -> str:
    return " ".join(text.split())
