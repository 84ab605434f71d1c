"""Quality on a question set: retrieval, and the answers the service gives.

Each question names the passages (`evidence`) that answer it: one, several for a question
that combines facts, none for a question the documents cannot answer. A retrieved chunk
is relevant when its text contains one of them (whitespace collapsed, case kept), so a
passage cut in two by chunking counts as a miss.

Retrieval (`evaluate`): recall@1 and @k and MRR (the first relevant chunk's rank), and
evidence recall (the share of questions whose every passage is among the k chunks).

Answers (`evaluate_answers`): the service runs as it is deployed, on a fresh store in a
temporary folder, and every question is asked through `POST /v1/ask`. Abstention is the
share of unanswerable questions answered `answered: false`; false abstention, the share
of answerable ones; citation precision, the share of cited sources that hold one of the
question's passages; containment, the share of answerable questions whose short answer
appears in the answer; latency, from the request sent to the whole answer read. The
answerability curve gives abstention and false abstention at each threshold, from the
scores the service reported.
"""

from __future__ import annotations

import json
import socket
import statistics
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from rag_qa.embeddings import Embedder
from rag_qa.ingestion import open_ingestor
from rag_qa.observability import Metrics
from rag_qa.retrieval import Retriever
from rag_qa.settings import Settings

Kind = Literal["single", "paraphrase", "multi", "unanswerable"]
KINDS: tuple[Kind, ...] = ("single", "paraphrase", "multi", "unanswerable")


@dataclass(frozen=True)
class Question:
    question: str
    kind: Kind
    document: str | None
    evidence: tuple[str, ...]
    answer: str  # a short answer found in the evidence; empty when there is none

    @property
    def answerable(self) -> bool:
        return bool(self.evidence)

    def held_by(self, text: str) -> bool:
        """Whether `text` holds one of the question's passages."""
        text = _normalise(text)
        return any(_normalise(passage) in text for passage in self.evidence)


def load_questions(path: Path) -> list[Question]:
    questions = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            row["evidence"] = tuple(row["evidence"])
            questions.append(Question(**row))
    return questions


@dataclass(frozen=True)
class Outcome:
    question: Question
    rank: int | None  # 1-based rank of the first relevant chunk, None when not in the top k
    found: int  # how many of its passages are in the top k
    top_score: float

    @property
    def all_found(self) -> bool:
        return self.found == len(self.question.evidence)


@dataclass(frozen=True)
class Report:
    k: int
    documents: int
    chunks: int
    outcomes: list[Outcome]  # the answerable questions'

    def of(self, *kinds: Kind) -> list[Outcome]:
        return [o for o in self.outcomes if not kinds or o.question.kind in kinds]

    def recall_at(self, rank: int, *kinds: Kind) -> float:
        return _share(o.rank is not None and o.rank <= rank for o in self.of(*kinds))

    @property
    def recall(self) -> float:
        return self.recall_at(self.k)

    @property
    def mrr(self) -> float:
        return statistics.fmean(1 / o.rank if o.rank else 0.0 for o in self.outcomes)

    def evidence_recall(self, *kinds: Kind) -> float:
        return _share(o.all_found for o in self.of(*kinds))

    def summary(self) -> str:
        return (
            f"{len(self.outcomes)} answerable questions over {self.documents} documents "
            f"({self.chunks} chunks): recall@1 {self.recall_at(1):.3f}, recall@{self.k} "
            f"{self.recall:.3f}, MRR {self.mrr:.3f}, evidence recall@{self.k} "
            f"{self.evidence_recall():.3f} (multi-fact {self.evidence_recall('multi'):.3f})"
        )


def evaluate(
    settings: Settings,
    corpus: Path,
    questions: list[Question],
    k: int = 5,
    *,
    embedder: Embedder | None = None,
) -> Report:
    """Retrieval on the answerable questions; `embedder` (loaded) in place of the one the
    settings describe: to score a model."""
    with tempfile.TemporaryDirectory(prefix="rag-eval-") as folder:
        settings = settings.model_copy(
            update={"lancedb_path": Path(folder), "vector_store": "lancedb"}
        )
        metrics = Metrics()
        ingestor = open_ingestor(settings, metrics, embedder)
        files = _files(corpus)
        for path in files:
            ingestor.ingest(path.name, path.read_bytes())
        retriever = Retriever(ingestor.embedder, ingestor.store, metrics)
        outcomes = []
        for question in questions:
            if not question.answerable:
                continue
            hits = retriever.search(question.question, k)
            rank = next(
                (i for i, hit in enumerate(hits, start=1) if question.held_by(hit.text)), None
            )
            text = " ".join(_normalise(hit.text) for hit in hits)
            found = sum(_normalise(passage) in text for passage in question.evidence)
            outcomes.append(Outcome(question, rank, found, hits[0].score if hits else 0.0))
        return Report(k, len(files), ingestor.store.count(), outcomes)


@dataclass(frozen=True)
class Asked:
    question: Question
    answered: bool
    answer: str
    score: float  # the answerability the service reported
    cited: list[str]  # the texts of the sources the answer cites
    seconds: float
    extracted: bool = False

    @property
    def contains_answer(self) -> bool:
        return bool(self.question.answer) and self.question.answer.lower() in self.answer.lower()


@dataclass
class AnswerReport:
    threshold: float  # the service's min_answerability
    asked: list[Asked] = field(default_factory=list)

    def _of(self, answerable: bool) -> list[Asked]:
        return [a for a in self.asked if a.question.answerable == answerable]

    @property
    def abstention(self) -> float:
        return _share(not a.answered for a in self._of(False))

    @property
    def false_abstention(self) -> float:
        return _share(not a.answered for a in self._of(True))

    @property
    def citation_precision(self) -> float:
        cited = [a.question.held_by(text) for a in self._of(True) if a.answered for text in a.cited]
        return _share(cited)

    @property
    def cites_a_source(self) -> float:
        """The share of answered questions whose answer cites at least one source."""
        return _share(bool(a.cited) for a in self.asked if a.answered)

    @property
    def containment(self) -> float:
        """Over the answerable questions that give a short answer."""
        return _share(a.contains_answer for a in self._of(True) if a.question.answer)

    def latency_s(self, quantile: float) -> float:
        seconds = sorted(a.seconds for a in self.asked)
        return seconds[min(len(seconds) - 1, int(quantile * len(seconds)))] if seconds else 0.0

    def curve(self, thresholds: Iterable[float]) -> list[tuple[float, float, float]]:
        """(threshold, abstention, false abstention) had the service abstained below each."""
        unanswerable, answerable = self._of(False), self._of(True)
        return [
            (
                threshold,
                _share(a.score < threshold for a in unanswerable),
                _share(a.score < threshold for a in answerable),
            )
            for threshold in thresholds
        ]

    def summary(self) -> str:
        answerable, unanswerable = len(self._of(True)), len(self._of(False))
        return (
            f"{len(self.asked)} questions asked ({answerable} answerable, {unanswerable} not): "
            f"abstained on {_percent(self.abstention)} of the unanswerable and on "
            f"{_percent(self.false_abstention)} of the answerable (min_answerability "
            f"{self.threshold:g}); citation precision {_percent(self.citation_precision)}; answers "
            f"citing a source {_percent(self.cites_a_source)}; short answer contained in "
            f"{_percent(self.containment)}; ask latency p50 {self.latency_s(0.5):.2f} s, "
            f"p95 {self.latency_s(0.95):.2f} s"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "threshold": self.threshold,
            "abstention": self.abstention,
            "false_abstention": self.false_abstention,
            "citation_precision": self.citation_precision,
            "cites_a_source": self.cites_a_source,
            "containment": self.containment,
            "latency_p50_s": self.latency_s(0.5),
            "latency_p95_s": self.latency_s(0.95),
            "curve": [
                {"threshold": t, "abstention": a, "false_abstention": f}
                for t, a, f in self.curve(CURVE_THRESHOLDS)
            ],
            "questions": [
                {
                    "question": a.question.question,
                    "kind": a.question.kind,
                    "answered": a.answered,
                    "extracted": a.extracted,
                    "answerability": a.score,
                    "answer": a.answer,
                    "contains_answer": a.contains_answer,
                    "cited_hold_evidence": [a.question.held_by(text) for text in a.cited],
                    "seconds": round(a.seconds, 3),
                }
                for a in self.asked
            ],
        }


CURVE_THRESHOLDS = [round(0.3 + 0.025 * i, 3) for i in range(21)]  # 0.3 to 0.8


def evaluate_answers(
    settings: Settings,
    corpus: Path,
    questions: list[Question],
    *,
    api_key: str | None = None,
) -> AnswerReport:
    """Every question asked of the service, started here on a fresh store with the model
    at `model_path` (the demo model is prepared there when missing); blocking."""
    from rag_qa.app import create_app
    from rag_qa.commands import BackgroundServer
    from rag_qa.model_files import prepare_model

    prepare_model(settings.model_path)

    with tempfile.TemporaryDirectory(prefix="rag-eval-") as folder:
        settings = settings.model_copy(
            update={"lancedb_path": Path(folder), "vector_store": "lancedb", "rate_limit_rps": 0}
        )
        server = BackgroundServer(create_app(settings), _free_port())
        if not server.start():
            raise RuntimeError("the service did not start")
        headers = {"X-API-Key": api_key} if api_key else {}
        report = AnswerReport(settings.min_answerability)
        try:
            with httpx.Client(base_url=server.base_url, headers=headers, timeout=300) as client:
                for path in _files(corpus):
                    client.post(
                        "/v1/documents", files={"file": (path.name, path.read_bytes())}
                    ).raise_for_status()
                for question in questions:
                    report.asked.append(_ask(client, question))
        finally:
            server.stop()
        return report


def _ask(client: httpx.Client, question: Question) -> Asked:
    started = time.perf_counter()
    response = client.post("/v1/ask", json={"question": question.question, "stream": False})
    seconds = time.perf_counter() - started
    response.raise_for_status()
    body = response.json()
    return Asked(
        question=question,
        answered=body["answered"],
        answer=body["answer"],
        score=body["answerability"]["score"] if body["answerability"] else 0.0,
        cited=[source["text"] for source in body["sources"] if source["cited"]],
        seconds=seconds,
        extracted=body["extracted"],
    )


def _files(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.iterdir() if p.is_file())


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _percent(share: float) -> str:
    return f"{100 * share:.1f}" + "%"


def _share(flags: Iterable[bool]) -> float:
    values = list(flags)
    return sum(values) / len(values) if values else 0.0


def _normalise(text: str) -> str:
    return " ".join(text.split())
