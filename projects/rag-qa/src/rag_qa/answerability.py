"""Whether the retrieved passages answer the question, decided before the model is asked.

A passage on the right topic scores high on cosine similarity whether or not it holds the
answer, so similarity alone cannot tell "the handbook's leave rules" from "the handbook's
parental leave, which it never mentions". Two signals that do separate, combined:

- `similarity`: the best cosine between the question and one sentence of the passages
  (a sentence, not a chunk: the answer is a claim, and a chunk dilutes it);
- `coverage`: the share of the question's key terms (stems, weighted by how rare they are
  among the passages) that the passages hold, title and headings included. An
  unanswerable question usually asks for the one thing the text does not name.

`score` is their mean; below `min_answerability` the service abstains. The threshold is
calibrated on the evaluation set (`python -m rag_qa eval` prints the curve of
abstention on unanswerable questions against false abstention on answerable ones).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rag_qa.evidence import Evidence

# The passages whose terms count: the best few, as the prompt holds them.
COVERAGE_PASSAGES = 3


@dataclass(frozen=True)
class Answerability:
    similarity: float
    coverage: float
    missing: tuple[str, ...]  # the question's key terms no passage holds

    @property
    def score(self) -> float:
        return (self.similarity + self.coverage) / 2


def assess(evidence: Evidence) -> Answerability:
    if not evidence.sentences:
        return Answerability(0.0, 0.0, tuple(sorted(evidence.question_terms)))
    similarity = float(evidence.similarities(evidence.question_vector).max())
    terms = evidence.question_terms
    passages = evidence.passages[:COVERAGE_PASSAGES]
    held = set().union(*(passage.terms for passage in passages))
    # A term in every passage says little (the document's name); one in none, much.
    weights = {
        term: math.log(1 + len(evidence.passages) / (1 + _passages_with(evidence, term)))
        for term in terms
    }
    total = sum(weights.values())
    found = sum(weight for term, weight in weights.items() if term in held)
    coverage = found / total if total else 1.0
    return Answerability(round(similarity, 4), round(coverage, 4), tuple(sorted(terms - held)))


def _passages_with(evidence: Evidence, term: str) -> int:
    return sum(term in passage.terms for passage in evidence.passages)
