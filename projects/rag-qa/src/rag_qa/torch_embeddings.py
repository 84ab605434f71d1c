"""The embedder on torch: a sentence-transformers folder, optionally int8 on CPU."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Sequence

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from rag_qa.embeddings import count_tokens, default_model_path
from rag_qa.settings import Settings

logger = logging.getLogger(__name__)


class SentenceTransformerEncoder:
    def __init__(self, model: SentenceTransformer, threads: int) -> None:
        self.model = model
        self.threads = threads

    @classmethod
    def load(cls, settings: Settings) -> SentenceTransformerEncoder:
        # The folder is complete; never let the hub client look anything up.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        path = settings.embedding_model_path or default_model_path()
        device = _device(settings.device)
        model = SentenceTransformer(str(path), device=device, local_files_only=True)
        if settings.embedding_int8 and device == "cpu":
            with warnings.catch_warnings():
                # Eager-mode dynamic quantisation is deprecated in favour of torchao,
                # which the CPU wheels do not ship; it still works and is measured here.
                warnings.simplefilter("ignore")
                model = torch.ao.quantization.quantize_dynamic(
                    model, {torch.nn.Linear}, dtype=torch.qint8
                )
        logger.info(
            "embedder ready",
            extra={
                "runtime": "torch",
                "path": str(path),
                "device": device,
                "int8": settings.embedding_int8,
            },
        )
        return cls(model.eval(), settings.embedding_threads)

    @property
    def dimension(self) -> int:
        # Renamed in sentence-transformers 6; the old name still works before that.
        dimension = getattr(self.model, "get_embedding_dimension", None)
        return int((dimension or self.model.get_sentence_embedding_dimension)() or 0)

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        return count_tokens(self.model.tokenizer, texts)

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        with torch.inference_mode():
            # Intra-op thread counts belong to the calling thread (OpenMP), and embedding
            # runs on whichever worker thread is free: set ours on each call.
            torch.set_num_threads(self.threads)
            vectors = self.model.encode(
                list(texts),
                batch_size=batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
            )
        return np.asarray(vectors, dtype=np.float32)


def _device(setting: str) -> str:
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting
