"""The grounded prompt: numbered sources, then the question; and the citations back."""

from __future__ import annotations

import re
from collections.abc import Sequence

from rag_qa.store import Hit

ChatMessage = dict[str, str]

_CITATION = re.compile(r"\[(\d{1,2})\]")


def build_messages(system_prompt: str, question: str, hits: Sequence[Hit]) -> list[ChatMessage]:
    sources = "\n\n".join(
        f"[{number}] {_label(hit)}\n{hit.text}" for number, hit in enumerate(hits, start=1)
    )
    return [
        {"role": "system", "content": system_prompt},
        {"role": "user", "content": f"Sources:\n\n{sources}\n\nQuestion: {question}"},
    ]


def cited_numbers(answer: str, sources: int) -> set[int]:
    """The source numbers the answer cites, like [2], among 1..sources."""
    return {n for n in map(int, _CITATION.findall(answer)) if 1 <= n <= sources}


def _label(hit: Hit) -> str:
    return " > ".join(part for part in (hit.title, hit.headings) if part)
