"""An answer as the model writes it, made into one the service can stand behind.

The text is cut into sentences as it streams. Each sentence is attributed to the passage
that supports it (attribution.py) before it is given out, so `[n]` markers, `cited` and
the event stream's citations all say the same thing. The generation is stopped once the
answer has a sentence for each thing the question asks (at most `answer_max_sentences`)
or starts repeating itself, rather than
running on to the token limit; and when no sentence it wrote is supported, the answer is
extracted from the passages instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from rag_qa.attribution import AnswerSentence, attribute, extract
from rag_qa.engines.base import EngineEvent, Finished, TextDelta
from rag_qa.evidence import Evidence
from rag_qa.generation import Generation
from rag_qa.retrieval import clauses
from rag_qa.sentences import complete_sentences, key_terms, split_sentences
from rag_qa.settings import Settings

# A sentence whose key terms are mostly an earlier sentence's says nothing new.
REPEAT_OVERLAP = 0.8
# Words in a row that, seen three times in one sentence, mean the model is looping.
LOOP_WORDS = 4
_WORDS = re.compile(r"\w+")


class Draft:
    """The model's text so far: complete sentences handed out once, repetition noticed."""

    def __init__(self, max_sentences: int) -> None:
        self.max_sentences = max_sentences
        self.sentences: list[str] = []
        self.pending = ""
        self.done = False  # said enough, or repeating itself: stop the generation

    def feed(self, text: str) -> list[str]:
        complete, self.pending = complete_sentences(self.pending + text)
        given = self._take(complete)
        if not self.done and _loops(self.pending):
            self.done = True
        return given

    def finish(self) -> list[str]:
        """What is left once the generation has ended."""
        rest, self.pending = self.pending, ""
        return [] if self.done else self._take(split_sentences(rest))

    def _take(self, sentences: list[str]) -> list[str]:
        given = []
        for sentence in sentences:
            if self.done:
                break
            if self._repeats(sentence):
                self.done = True
                break
            self.sentences.append(sentence)
            given.append(sentence)
            if len(self.sentences) >= self.max_sentences:
                self.done = True
        return given

    def _repeats(self, sentence: str) -> bool:
        terms = key_terms(sentence)
        for earlier in self.sentences:
            before = key_terms(earlier)
            if not terms or not before:
                if sentence.strip().lower() == earlier.strip().lower():
                    return True
                continue
            if len(terms & before) / len(terms | before) >= REPEAT_OVERLAP:
                return True
        return _loops(sentence)


def _loops(text: str) -> bool:
    words = [word.lower() for word in _WORDS.findall(text)]
    seen: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - LOOP_WORDS + 1):
        gram = tuple(words[i : i + LOOP_WORDS])
        seen[gram] = seen.get(gram, 0) + 1
        if seen[gram] >= 3:
            return True
    return False


@dataclass
class Answer:
    """What an answer came to, once its sentences are all given out."""

    sentences: list[AnswerSentence] = field(default_factory=list)  # as given out
    extracted: bool = False  # the model's answer was unsupported: these are the passages'
    finished: Finished | None = None

    @property
    def text(self) -> str:
        return " ".join(sentence.cited() for sentence in self.sentences)

    def cited(self) -> set[int]:
        return {number for sentence in self.sentences for number in sentence.sources}


async def compose(
    generation: Generation, evidence: Evidence, settings: Settings, answer: Answer
) -> AsyncIterator[AnswerSentence]:
    """Yields the answer's sentences as they are attributed, filling in `answer`."""
    # A sentence for each thing the question asks.
    wanted = min(settings.answer_max_sentences, max(1, len(clauses(evidence.question))))
    draft = Draft(wanted)

    async def given(sentences: list[str]) -> list[AnswerSentence]:
        if not sentences:
            return []
        attributed = await asyncio.to_thread(attribute, evidence, sentences, settings.min_support)
        kept = [
            sentence
            for sentence in attributed
            if sentence.supported or settings.unsupported_sentences == "flag"
        ]
        answer.sentences += kept
        return kept

    async with contextlib.aclosing(generation.events()) as events:
        async for event in events:
            if isinstance(event, TextDelta):
                for sentence in await given(draft.feed(event.text)):
                    yield sentence
                if draft.done:
                    answer.finished = generation.stop()
                    break
            elif isinstance(event, Finished):
                answer.finished = event
    for sentence in await given(draft.finish()):
        yield sentence
    if not any(sentence.supported for sentence in answer.sentences):
        answer.extracted = True
        extracted = await asyncio.to_thread(extract, evidence)
        answer.sentences += extracted
        for sentence in extracted:
            yield sentence


async def answer_events(
    generation: Generation, evidence: Evidence, settings: Settings, answer: Answer
) -> AsyncIterator[EngineEvent]:
    """The composed answer as an engine's events, for a route that streams text: each
    sentence with its markers, joined by spaces as `Answer.text` joins them, then how the
    generation finished."""
    first = True
    async for sentence in compose(generation, evidence, settings, answer):
        yield TextDelta(sentence.cited() if first else " " + sentence.cited())
        first = False
    yield answer.finished or Finished("stop", 0, 0)
