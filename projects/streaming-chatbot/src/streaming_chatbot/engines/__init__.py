"""LLM engines behind one interface; `APP_ENGINE` picks one."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from streaming_chatbot.engines.base import Engine
from streaming_chatbot.observability import Metrics
from streaming_chatbot.settings import Settings


def create_engine(
    settings: Settings, tokenizer: PreTrainedTokenizerBase, metrics: Metrics
) -> Engine:
    if settings.engine == "vllm":
        from streaming_chatbot.engines.vllm import VllmEngine

        return VllmEngine(settings)
    # Imported here so a vLLM-only gateway never loads the model code.
    from streaming_chatbot.engines.embedded import EmbeddedEngine

    return EmbeddedEngine(settings, tokenizer, metrics)
