"""The grounded prompt: numbered sources, then the question."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

from rag_qa.chunking import HEADING_SEPARATOR
from rag_qa.errors import ServiceError
from rag_qa.generation import ChatMessage
from rag_qa.store import Hit


class NoQuestion(ServiceError):
    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "no_question"


@dataclass(frozen=True)
class ChatQuestion:
    """A chat read as a question about the documents: its last message, the user's."""

    question: str
    history: list[ChatMessage] = field(default_factory=list)  # the turns before it
    instructions: list[str] = field(default_factory=list)  # the caller's system messages


def chat_question(messages: Sequence[ChatMessage]) -> ChatQuestion:
    """The question a chat asks; NoQuestion (422) when its last message is not the user's."""
    if not messages or messages[-1]["role"] != "user" or not messages[-1]["content"].strip():
        raise NoQuestion("the last message must be the user's question, with some text")
    *before, last = messages
    return ChatQuestion(
        question=last["content"],
        history=[m for m in before if m["role"] != "system"],
        instructions=[m["content"] for m in before if m["role"] == "system"],
    )


def build_messages(
    system_prompt: str,
    question: str,
    hits: Sequence[Hit],
    *,
    history: Sequence[ChatMessage] = (),
    instructions: Sequence[str] = (),
) -> list[ChatMessage]:
    """The service's instructions (then the caller's), earlier turns, and the question
    after the numbered sources."""
    sources = "\n\n".join(
        f"[{number}] {_label(hit)}\n{hit.text}" for number, hit in enumerate(hits, start=1)
    )
    system = "\n\n".join([system_prompt, *instructions])
    return [
        {"role": "system", "content": system},
        *history,
        {"role": "user", "content": f"Sources:\n\n{sources}\n\nQuestion: {question}"},
    ]


def _label(hit: Hit) -> str:
    """The title, then the headings under it: the title once, though the document's first
    heading often repeats it."""
    headings = [h for h in hit.headings.split(HEADING_SEPARATOR) if h and h != hit.title]
    return HEADING_SEPARATOR.join([hit.title, *headings] if hit.title else headings)
