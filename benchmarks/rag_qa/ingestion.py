"""Ingestion: the project's Embedder on ~128-token chunks, float32 against int8, and
whole documents through the project's Ingestor (parse, chunk, embed, store)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import stats

CHUNKS = 320  # ten batches of the default 32 per measurement
REPETITIONS = 3


def embedder(int8: bool, **settings: Any) -> Any:
    """The project's Embedder, loaded, at its defaults but for int8."""
    from rag_qa.embeddings import Embedder
    from rag_qa.observability import Metrics
    from rag_qa.settings import Settings

    loaded = Embedder(Settings(embedding_int8=int8, **settings), Metrics())
    loaded.load()
    return loaded


def embedder_key(loaded: Any) -> str:
    """What the cached vectors depend on: the model folder and the quantisation."""
    from rag_qa.embeddings import default_model_path

    path = loaded.settings.embedding_model_path or default_model_path()
    return f"{Path(path).name}:int8={loaded.settings.embedding_int8}"


def chunk_texts(passages: Sequence[str], loaded: Any, count: int = CHUNKS) -> list[str]:
    """`count` chunks as the service makes them: the passages as one Markdown document, one
    section per 20 passages, split by the project's Chunker at its default size (128
    tokens with headings, 24 overlapping); what is embedded is `embedding_text`."""
    from rag_qa.chunking import Chunker
    from rag_qa.documents import parse

    sections = [
        f"## Section {n // 20}\n\n" + "\n\n".join(passages[n : n + 20])
        for n in range(0, len(passages), 20)
    ]
    document = parse("stdlib.md", ("# Standard library\n\n" + "\n\n".join(sections)).encode())
    settings = loaded.settings
    chunker = Chunker(loaded.count_tokens, settings.chunk_tokens, settings.chunk_overlap_tokens)
    chunks = chunker.split(document)
    if len(chunks) < count:
        raise RuntimeError(f"only {len(chunks)} chunks from the passages; {count} wanted")
    return [chunk.embedding_text(document.title) for chunk in chunks[:count]]


def embedding_throughput(embedders: dict[str, Any], texts: Sequence[str]) -> dict[str, Any]:
    """Chunks/s per embedder, REPETITIONS times each, interleaved; median with min-max."""
    tokens = embedders[next(iter(embedders))].count_tokens(texts)
    rates: dict[str, list[float]] = {name: [] for name in embedders}
    for loaded in embedders.values():  # the first batches of each shape run slower
        loaded.embed(texts[:64])
    for _ in range(REPETITIONS):
        for name, loaded in embedders.items():
            started = time.perf_counter()
            loaded.embed(texts)
            rates[name].append(len(texts) / (time.perf_counter() - started))
            print(f"  embedding {name}: {rates[name][-1]:.1f} chunks/s", flush=True)
    return {
        "chunks": len(texts),
        "batch_size": embedders[next(iter(embedders))].settings.embedding_batch_size,
        "tokens_mean": sum(tokens) / len(tokens),
        "tokens_max": max(tokens),
        "chunks_per_s": {name: stats.spread(values) for name, values in rates.items()},
        "runs": rates,
    }


def end_to_end(loaded: Any, folder: Path, store_path: Path) -> dict[str, Any]:
    """Every file of `folder` through Ingestor.ingest into a new LanceStore."""
    from rag_qa.ingestion import Ingestor
    from rag_qa.lance_store import LanceStore
    from rag_qa.observability import Metrics

    store = LanceStore(loaded.settings.model_copy(update={"lancedb_path": store_path}))
    store.open(loaded.dimension)
    ingestor = Ingestor(loaded.settings, loaded, store, Metrics())
    files = sorted(p for p in folder.iterdir() if p.is_file())
    chunks = 0
    started = time.perf_counter()
    for path in files:
        result = ingestor.ingest(path.name, path.read_bytes())
        chunks += result.document.chunks
    seconds = time.perf_counter() - started
    return {
        "documents": len(files),
        "bytes": sum(p.stat().st_size for p in files),
        "chunks": chunks,
        "seconds": seconds,
        "chunks_per_s": chunks / seconds,
    }
