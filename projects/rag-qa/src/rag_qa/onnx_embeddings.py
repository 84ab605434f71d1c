"""The embedder on ONNX Runtime: the folder `export-embedder` wrote (embedder_export.py).

    model.onnx        the encoder with mean pooling and normalisation inside: token ids and
                      attention mask in, one unit vector per text out (int8 where the gate
                      published it, else fp32); what the service needs to know rides in
                      its metadata (dimension, token window)
    tokenizer files   the sentence-transformers folder's own, copied beside it

Texts are embedded in batches sorted by length, so padding costs little.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
from transformers import AutoTokenizer

from rag_qa.embeddings import count_tokens
from rag_qa.onnx_model import InvalidOnnxModel, OnnxModel, resolve_device
from rag_qa.settings import Settings

logger = logging.getLogger(__name__)

MODEL_FILE = "model.onnx"


class OnnxEncoder:
    def __init__(self, model: OnnxModel, tokenizer: Any, dimension: int, max_tokens: int) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self._dimension = dimension
        self._max_tokens = max_tokens

    @classmethod
    def load(cls, settings: Settings) -> OnnxEncoder:
        """The exported folder at embedding_model_path; InvalidOnnxModel with the reason
        when it is not one."""
        folder = settings.embedding_model_path
        if folder is None:
            raise InvalidOnnxModel(
                "embedding_runtime onnxruntime needs APP_EMBEDDING_MODEL_PATH: the folder "
                "`export-embedder` wrote"
            )
        model = OnnxModel.load(
            folder / MODEL_FILE,
            device=resolve_device(settings.device),
            threads=settings.embedding_threads,
            expected_sha256=settings.embedding_model_sha256,
        )
        try:
            tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise InvalidOnnxModel(f"no tokenizer in {folder}: {exc}") from exc
        encoder = cls.wrap(model, tokenizer)
        logger.info(
            "embedder ready",
            extra={
                "runtime": "onnxruntime",
                "path": str(model.path),
                "providers": model.providers,
                "precision": model.metadata.get("precision"),
                "sha256": model.sha256,
            },
        )
        return encoder

    @classmethod
    def wrap(cls, model: OnnxModel, tokenizer: Any) -> OnnxEncoder:
        """An encoder of a loaded model and its tokenizer, once the model proves to be an
        embedder export."""
        missing = {"input_ids", "attention_mask"} - set(model.input_names)
        dimension, max_tokens = model.metadata.get("dimension"), model.metadata.get("max_tokens")
        if missing or not isinstance(dimension, int) or not isinstance(max_tokens, int):
            raise InvalidOnnxModel(
                f"{model.path} is not an embedder export: it takes {model.input_names} and "
                f"records dimension {dimension!r}, max_tokens {max_tokens!r}"
            )
        return cls(model, tokenizer, dimension, max_tokens)

    @property
    def dimension(self) -> int:
        return self._dimension

    @property
    def max_tokens(self) -> int:
        return self._max_tokens

    def token_counts(self, texts: Sequence[str]) -> list[int]:
        return count_tokens(self.tokenizer, texts)

    def feeds(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        return tokenize(self.tokenizer, texts, self._max_tokens, self.model.input_names)

    def encode(self, texts: Sequence[str], batch_size: int) -> np.ndarray:
        if not texts:
            return np.zeros((0, self._dimension), np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        vectors = np.empty((len(texts), self._dimension), np.float32)
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size]
            vectors[chosen] = self.model.run_feeds(self.feeds([texts[i] for i in chosen]))
        return vectors


def tokenize(
    tokenizer: Any, texts: Sequence[str], max_tokens: int, names: Sequence[str]
) -> dict[str, np.ndarray]:
    """One batch as the model takes it (the inputs `names`, int64): padded to its longest
    text, cut at the window."""
    encoded = tokenizer(
        list(texts), padding=True, truncation=True, max_length=max_tokens, return_tensors="np"
    )
    return {name: encoded[name].astype(np.int64) for name in names}
