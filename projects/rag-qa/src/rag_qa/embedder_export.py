"""Exports the embedder to ONNX and publishes it through the int8 gate, bounded on the
project's own retrieval QA set: `python -m rag_qa export-embedder`.

    pip install ".[export]"
    python -m rag_qa export-embedder --output models/embedder
    APP_EMBEDDING_RUNTIME=onnxruntime APP_EMBEDDING_MODEL_PATH=models/embedder \
        python -m rag_qa serve

The sentence-transformers model (APP_EMBEDDING_MODEL_PATH, else all-MiniLM-L6-v2) is
exported whole: encoder, mean pooling and normalisation, token ids and attention mask in,
unit vectors out, with a dynamic batch and length, and checked equal to torch on the
corpus's own chunks. The gate then tries dynamic int8 (static calibration does not suit
this encoder, see quantization.py) and publishes it only if, at APP_EMBEDDING_BATCH_SIZE on
APP_EMBEDDING_THREADS threads, it is at least 1.3x faster than fp32 and recall@k on the QA
set drops by at most 0.01. Written to `--output`:

    model.fp32.onnx    the export
    model.onnx         what the service loads: int8 if the gate published it, else fp32
    model.int8.onnx    the best int8 candidate
    gate.json          the gate's figures, its decision and why
    *.sha256           each file's digest (pin it with APP_EMBEDDING_MODEL_SHA256)
    tokenizer files    copied from the model folder
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from rag_qa.chunking import Chunker
from rag_qa.documents import parse
from rag_qa.embeddings import Embedder, default_model_path
from rag_qa.evaluation import Question, evaluate
from rag_qa.observability import Metrics
from rag_qa.onnx_embeddings import MODEL_FILE, OnnxEncoder, tokenize
from rag_qa.onnx_export import ExportReport, export_onnx
from rag_qa.onnx_model import OnnxModel
from rag_qa.quantization import DYNAMIC, MIN_SPEEDUP, GateReport, publish
from rag_qa.settings import Settings
from rag_qa.torch_embeddings import SentenceTransformerEncoder

MAX_RECALL_LOSS = 0.01
OUTPUT_NAME = "sentence_embedding"


@dataclass(frozen=True)
class PublishedEmbedder:
    folder: Path
    export: ExportReport
    gate: GateReport


class _Pooled(torch.nn.Module):
    """The sentence-transformers pipeline as one module of positional tensors."""

    def __init__(self, model: torch.nn.Module, names: list[str]) -> None:
        super().__init__()
        self.model = model
        self.names = names

    def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
        return self.model(dict(zip(self.names, tensors, strict=True)))["sentence_embedding"]


def export_embedder(
    settings: Settings,
    output: Path,
    *,
    corpus: Path,
    questions: list[Question],
    k: int = 5,
    max_recall_loss: float = MAX_RECALL_LOSS,
    min_speedup: float = MIN_SPEEDUP,
) -> PublishedEmbedder:
    cpu = settings.model_copy(
        update={"device": "cpu", "embedding_int8": False, "embedding_runtime": "torch"}
    )
    source = SentenceTransformerEncoder.load(cpu)
    output.mkdir(parents=True, exist_ok=True)
    source.model.tokenizer.save_pretrained(str(output))
    texts = corpus_chunks(source, cpu, corpus)
    names = _input_names(source)

    def feeds(batch: list[str]) -> dict[str, np.ndarray]:
        return tokenize(source.model.tokenizer, batch, source.max_tokens, names)

    # Batches of 1, 4 and 16 chunks, each padded to its own longest: every shape varies.
    held_out = [feeds(texts[i : i + n]) for i, n in ((0, 1), (1, 4), (5, 16))]
    fp32 = output / "model.fp32.onnx"
    exported = export_onnx(
        _Pooled(source.model, names),
        fp32,
        example=feeds(texts[:2]),
        metadata={
            "name": (settings.embedding_model_path or default_model_path()).name,
            "dimension": source.dimension,
            "max_tokens": source.max_tokens,
        },
        held_out=held_out,
        dynamic_axes={name: {1: "sequence"} for name in names},
        compare=lambda vectors: vectors,
        exporter="torchscript",  # torch.export's program of a BERT encoder does not load
        output_name=OUTPUT_NAME,
    )
    batch = cpu.embedding_batch_size
    speed_batch = feeds((texts * batch)[:batch])

    def recall(model: OnnxModel) -> float:
        encoder = OnnxEncoder.wrap(model, source.model.tokenizer)
        embedder = Embedder(cpu, Metrics(), encoder)
        return evaluate(cpu, corpus, questions, k, embedder=embedder).recall

    gate = publish(
        fp32,
        output / MODEL_FILE,
        quality=recall,
        metric=f"recall@{k}",
        max_loss=max_recall_loss,
        quality_set=f"{len(questions)} questions over {corpus.name}",
        speed_batch=speed_batch,
        methods=[DYNAMIC],
        threads=cpu.embedding_threads,
        min_speedup=min_speedup,
    )
    return PublishedEmbedder(output, exported, gate)


def corpus_chunks(
    source: SentenceTransformerEncoder, settings: Settings, corpus: Path
) -> list[str]:
    """The texts the service would embed for the corpus: its chunks, as embedded."""
    chunker = Chunker(source.token_counts, settings.chunk_tokens, settings.chunk_overlap_tokens)
    texts: list[str] = []
    for path in sorted(p for p in corpus.iterdir() if p.is_file()):
        document = parse(path.name, path.read_bytes())
        texts.extend(c.embedding_text(document.title) for c in chunker.split(document))
    if len(texts) < 21:
        raise ValueError(f"{corpus} gives {len(texts)} chunks; the parity check needs 21")
    return texts


def summary(published: PublishedEmbedder) -> str:
    gate = published.gate
    return json.dumps(
        {
            "published": gate.published,
            "folder": str(published.folder),
            "reason": gate.reason,
            "max_abs_difference": published.export.max_abs_difference,
            "fp32_items_per_s": gate.fp32_items_per_s,
            "speedup": gate.speedup,
            "fp32_quality": gate.fp32_quality,
            "loss": gate.loss,
        },
        indent=2,
    )


def _input_names(source: SentenceTransformerEncoder) -> list[str]:
    encoded = source.model.tokenizer(["a"], return_tensors="np")
    return [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in encoded]
