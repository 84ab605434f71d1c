"""Sections to chunks sized in the embedder's own tokens, overlapping, headings kept.

Sentences are packed whole until a chunk is full; the next chunk starts with the last
sentences of the one before (up to the overlap), so an answer that straddles a boundary
is whole in one of them. A sentence longer than a chunk is cut at word boundaries.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rag_qa.documents import ParsedDocument

# Texts to token counts, without special tokens: the embedder's tokenizer.
TokenCounter = Callable[[Sequence[str]], list[int]]

_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+(?=\S)")
HEADING_SEPARATOR = " > "


@dataclass(frozen=True)
class Chunk:
    position: int
    text: str
    headings: tuple[str, ...]

    @property
    def heading_path(self) -> str:
        return HEADING_SEPARATOR.join(self.headings)

    def embedding_text(self, title: str) -> str:
        """What is embedded: the title and headings as context, then the text."""
        context = HEADING_SEPARATOR.join(h for h in (title, *self.headings) if h)
        return f"{context}\n{self.text}" if context else self.text


@dataclass(frozen=True)
class _Unit:
    text: str
    tokens: int
    paragraph: int


class Chunker:
    def __init__(self, count_tokens: TokenCounter, size: int, overlap: int) -> None:
        if overlap >= size // 2:
            raise ValueError("the overlap must be less than half the chunk size")
        self.count_tokens = count_tokens
        self.size = size
        self.overlap = overlap

    def split(self, document: ParsedDocument) -> list[Chunk]:
        chunks: list[Chunk] = []
        for section in document.sections:
            context = HEADING_SEPARATOR.join(h for h in (document.title, *section.headings) if h)
            (context_tokens,) = self.count_tokens([context]) if context else (0,)
            # Headings count against the chunk, but never leave less than half of it.
            budget = max(self.size - context_tokens - 1, self.size // 2)
            for text in self._pack(self._units(section.text, budget), budget):
                chunks.append(Chunk(len(chunks), text, section.headings))
        return chunks

    def _units(self, text: str, budget: int) -> list[_Unit]:
        pieces: list[tuple[str, int]] = []
        for paragraph, block in enumerate(re.split(r"\n\s*\n", text)):
            lines = " ".join(block.split())
            pieces.extend((s, paragraph) for s in _SENTENCE_END.split(lines) if s)
        counts = self.count_tokens([text for text, _ in pieces]) if pieces else []
        units: list[_Unit] = []
        for (sentence, paragraph), tokens in zip(pieces, counts, strict=True):
            if tokens <= budget:
                units.append(_Unit(sentence, tokens, paragraph))
            else:
                units.extend(_Unit(p, t, paragraph) for p, t in self._cut(sentence, budget))
        return units

    def _cut(self, sentence: str, budget: int) -> list[tuple[str, int]]:
        """A sentence over the budget, in word-aligned pieces that fit."""
        words = sentence.split()
        counts = self.count_tokens(words)
        pieces: list[tuple[str, int]] = []
        start, used = 0, 0
        for index, tokens in enumerate(counts):
            if used + tokens > budget and index > start:
                pieces.append((" ".join(words[start:index]), used))
                start, used = index, 0
            used += tokens
        pieces.append((" ".join(words[start:]), used))
        return pieces

    def _pack(self, units: list[_Unit], budget: int) -> list[str]:
        chunks: list[str] = []
        current: list[_Unit] = []
        used = 0
        fresh = 0  # units in `current` not already in the chunk before
        for unit in units:
            if current and used + unit.tokens > budget:
                chunks.append(_join(current))
                current, used = self._overlap(current, budget - unit.tokens)
                fresh = 0
            current.append(unit)
            used += unit.tokens
            fresh += 1
        if current and fresh:
            chunks.append(_join(current))
        return chunks

    def _overlap(self, previous: list[_Unit], room: int) -> tuple[list[_Unit], int]:
        """The trailing sentences of `previous` that fit in the overlap and the room left."""
        kept: list[_Unit] = []
        used = 0
        for unit in reversed(previous):
            if used + unit.tokens > min(self.overlap, room):
                break
            kept.insert(0, unit)
            used += unit.tokens
        return kept, used


def _join(units: list[_Unit]) -> str:
    text = units[0].text
    for before, unit in itertools.pairwise(units):
        text += ("\n\n" if unit.paragraph != before.paragraph else " ") + unit.text
    return text
