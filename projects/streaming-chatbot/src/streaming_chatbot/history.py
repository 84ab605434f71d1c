"""Fitting a conversation into the model's context, by token count."""

from __future__ import annotations

from streaming_chatbot.generation import LLM, ChatMessage


def fit_history(
    llm: LLM, messages: list[ChatMessage], reserve: int
) -> tuple[list[ChatMessage], list[int]]:
    """Drops the oldest turns until the prompt leaves `reserve` tokens for the answer.

    The system prompt and the newest message always stay; what is dropped goes a whole
    turn at a time, so the history never starts with an answer to a missing question.
    Returns the kept messages and their prompt token ids.
    """
    system = messages[:1] if messages and messages[0]["role"] == "system" else []
    turns = messages[len(system) :]
    limit = llm.settings.max_context_tokens - reserve
    while True:
        ids = llm.prompt_ids(system + turns)
        if len(ids) <= limit or len(turns) <= 1:
            return system + turns, ids
        turns = turns[1:]
        while len(turns) > 1 and turns[0]["role"] != "user":
            turns = turns[1:]
