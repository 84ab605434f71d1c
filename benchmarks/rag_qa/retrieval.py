"""Retrieval: the project's LanceStore against exact search in numpy, one query at a time.

The store is filled the way the service fills it: `LanceStore.add_document`, one
document of DOCUMENT_CHUNKS chunks per call, so it builds its IVF_HNSW_SQ index when the
table crosses `ann_index_min_rows` and folds later rows in with `optimize`, as in
production. Searches go through `LanceStore.search` (the service's query: cosine, its
NPROBES and REFINE_FACTOR, metadata and vectors selected). Other index parameters are
tried on the same table by replacing its index and setting the module's NPROBES and
REFINE_FACTOR, so every row of the sweep runs the same code path.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import stats

K = 10
WARMUP_QUERIES = 50
DOCUMENT_CHUNKS = 500  # chunks per add_document call (one Lance commit each)


@dataclass(frozen=True)
class Measured:
    latencies_s: list[float]
    found: np.ndarray  # (queries, K) row numbers, -1 where fewer than K came back

    def summary(self, exact: np.ndarray | None = None) -> dict[str, float]:
        values = {
            "p50_ms": stats.percentile(self.latencies_s, 50) * 1000,
            "p95_ms": stats.percentile(self.latencies_s, 95) * 1000,
            "p99_ms": stats.percentile(self.latencies_s, 99) * 1000,
            "queries": float(len(self.latencies_s)),
        }
        if exact is not None:
            values["recall_at_10"] = recall(self.found, exact)
        return values


def recall(found: np.ndarray, exact: np.ndarray) -> float:
    hits = sum(len(set(f) & set(e)) for f, e in zip(found.tolist(), exact.tolist(), strict=True))
    return hits / exact.size


def timed(search: Callable[[np.ndarray], np.ndarray], queries: np.ndarray) -> Measured:
    """One query at a time; the first WARMUP_QUERIES (repeated from the set) not counted."""
    for query in queries[:WARMUP_QUERIES]:
        search(query)
    latencies, found = [], []
    for query in queries:
        started = time.perf_counter()
        rows = search(query)
        latencies.append(time.perf_counter() - started)
        found.append(np.pad(rows, (0, K - len(rows)), constant_values=-1))
    return Measured(latencies, np.stack(found))


def exact_search(matrix: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """Brute force: unit float32 rows @ the query, argpartition, then sort the top K."""

    def search(query: np.ndarray) -> np.ndarray:
        scores = matrix @ query
        top = np.argpartition(-scores, K)[:K]
        return top[np.argsort(-scores[top])]

    return search


def _document_id(number: int) -> str:
    return f"bench-{number:06d}"


def _records(vectors: np.ndarray, texts: Sequence[str], parents: np.ndarray) -> Iterator[list[Any]]:
    from rag_qa.store import ChunkRecord

    now = time.time()
    for start in range(0, len(vectors), DOCUMENT_CHUNKS):
        stop = min(start + DOCUMENT_CHUNKS, len(vectors))
        number = start // DOCUMENT_CHUNKS
        yield [
            ChunkRecord(
                document_id=_document_id(number),
                position=row - start,
                text=texts[parents[row]],
                headings="",
                content_hash="",
                vector=vectors[row],
                title=f"Document {number}",
                filename=f"document-{number}.txt",
                content_type="text/plain",
                ingested_at=now,
                chunk_count=stop - start,
            )
            for row in range(start, stop)
        ]


def fill_store(
    path: Path, vectors: np.ndarray, texts: Sequence[str], parents: np.ndarray
) -> tuple[Any, float]:
    """A LanceStore at `path` holding the vectors, added as the service adds documents;
    returns it and the seconds it took (index build and optimize included)."""
    from rag_qa.lance_store import LanceStore
    from rag_qa.settings import Settings

    store = LanceStore(Settings(lancedb_path=path))
    store.open(vectors.shape[1])
    started = time.perf_counter()
    for records in _records(vectors, texts, parents):
        if not store.add_document(records):
            raise RuntimeError(f"{records[0].document_id} was already stored")
    seconds = time.perf_counter() - started
    if store.count() != len(vectors):
        raise RuntimeError(f"the store holds {store.count()} chunks, not {len(vectors)}")
    return store, seconds


def store_search(store: Any) -> Callable[[np.ndarray], np.ndarray]:
    """LanceStore.search, its hits as row numbers of the vectors it was filled with."""

    def search(query: np.ndarray) -> np.ndarray:
        hits = store.search(query, K)
        return np.array(
            [
                int(hit.document_id.rsplit("-", 1)[1]) * DOCUMENT_CHUNKS + hit.position
                for hit in hits
            ],
            dtype=np.int64,
        )

    return search


@dataclass(frozen=True)
class IndexChoice:
    name: str
    config: Callable[[], Any] | None  # None: no index (flat scan); "as built": keep it
    probes: Sequence[tuple[int, int | None]]  # (nprobes, refine_factor) tried on it
    keep: bool = False  # the index the service built while documents were added


def index_choices() -> list[IndexChoice]:
    from lancedb.index import IvfHnswSq, IvfPq

    return [
        IndexChoice(
            "IVF_HNSW_SQ as the service builds it (trained at 20k rows, rest merged)",
            None,
            [(10, 5), (20, None), (20, 5), (50, 5)],
            keep=True,
        ),
        IndexChoice(
            "IVF_HNSW_SQ rebuilt on 100k, default partitions",
            lambda: IvfHnswSq(distance_type="cosine"),
            [(10, 5), (20, 5)],
        ),
        IndexChoice(
            "IVF_HNSW_SQ rebuilt on 100k, num_partitions=64",
            lambda: IvfHnswSq(distance_type="cosine", num_partitions=64),
            [(5, 5), (10, 5), (20, 5)],
        ),
        IndexChoice(
            "IVF_PQ on 100k, default partitions and sub-vectors",
            lambda: IvfPq(distance_type="cosine"),
            [(20, 10), (50, 10)],
        ),
        IndexChoice("no index: flat scan", None, [(20, 5)]),
    ]


def sweep(
    store: Any, dimension: int, queries: np.ndarray, exact: np.ndarray
) -> list[dict[str, Any]]:
    """Each index choice on the store's table, each (nprobes, refine_factor) on it."""
    import lancedb
    from rag_qa import lance_store

    table = lancedb.connect(str(store.path)).open_table(store.name)
    defaults = (lance_store.NPROBES, lance_store.REFINE_FACTOR)
    rows = []
    try:
        for choice in index_choices():
            build_s = 0.0
            if not choice.keep:
                for index in table.list_indices():
                    table.drop_index(index.name)
                if choice.config is not None:
                    print(f"building {choice.name}", flush=True)
                    started = time.perf_counter()
                    table.create_index("vector", config=choice.config())
                    build_s = time.perf_counter() - started
                store.open(dimension)  # sees the table's new version
            for nprobes, refine in choice.probes:
                lance_store.NPROBES, lance_store.REFINE_FACTOR = nprobes, refine
                measured = timed(store_search(store), queries).summary(exact)
                row = {
                    "index": choice.name,
                    "build_s": build_s,
                    "nprobes": nprobes if choice.config or choice.keep else None,
                    "refine_factor": refine if choice.config or choice.keep else None,
                    **measured,
                }
                print(f"  {row}", flush=True)
                rows.append(row)
    finally:
        lance_store.NPROBES, lance_store.REFINE_FACTOR = defaults
    return rows


def indexed(store: Any) -> Mapping[str, Any]:
    """What index the store's table has, and how many rows it covers."""
    import lancedb

    table = lancedb.connect(str(store.path)).open_table(store.name)
    indices = table.list_indices()
    if not indices:
        return {"index": None}
    index_stats = table.index_stats(indices[0].name)
    return {
        "index": str(index_stats.index_type) if index_stats else indices[0].index_type,
        "indexed_rows": index_stats.num_indexed_rows if index_stats else None,
        "unindexed_rows": index_stats.num_unindexed_rows if index_stats else None,
    }
