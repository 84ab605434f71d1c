"""LLM engines behind one interface; `APP_ENGINE` picks one."""

from __future__ import annotations

from transformers import PreTrainedTokenizerBase

from rag_qa.engines.base import Engine
from rag_qa.observability import Metrics
from rag_qa.settings import Settings


def create_engine(
    settings: Settings, tokenizer: PreTrainedTokenizerBase, metrics: Metrics
) -> Engine:
    if settings.engine == "vllm":
        from rag_qa.engines.vllm import VllmEngine

        return VllmEngine(settings)
    # Imported here so a vLLM-only gateway never loads the model code.
    from rag_qa.engines.embedded import EmbeddedEngine

    return EmbeddedEngine(settings, tokenizer, metrics)
