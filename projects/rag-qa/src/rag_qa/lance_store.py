"""LanceDB, embedded: a folder of Lance files, searched in this process.

Below `ann_index_min_rows` chunks every search is exact (a flat scan: about 10 ms at 10k
chunks on 2 cores). From there on an IVF_HNSW_SQ index is built: measured at 100k chunks
on a busy 2-core machine, p95 24 ms with recall@10 0.9996 against exact search
(benchmarks/rag_qa). Each add is one Lance commit, so a document is stored whole or not
at all. One process writes at a time: run one replica on it, or use Milvus to scale out.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import lancedb
import numpy as np
import pyarrow as pa
from lancedb.index import IvfHnswSq

from rag_qa.settings import Settings
from rag_qa.store import ChunkRecord, DocumentInfo, Hit, SearchFilter, literal

logger = logging.getLogger(__name__)

METADATA = ["document_id", "position", "text", "headings", "title", "filename"]
# Partitions probed and candidates re-ranked with full vectors: the recall/latency
# trade-off benchmarks/rag_qa measures.
NPROBES = 20
REFINE_FACTOR = 5


def schema(dimension: int) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("document_id", pa.string(), nullable=False),
            pa.field("position", pa.int32(), nullable=False),
            pa.field("text", pa.string(), nullable=False),
            pa.field("headings", pa.string(), nullable=False),
            pa.field("content_hash", pa.string(), nullable=False),
            pa.field("title", pa.string(), nullable=False),
            pa.field("filename", pa.string(), nullable=False),
            pa.field("content_type", pa.string(), nullable=False),
            pa.field("ingested_at", pa.float64(), nullable=False),
            pa.field("chunk_count", pa.int32(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dimension), nullable=False),
        ]
    )


class LanceStore:
    def __init__(self, settings: Settings) -> None:
        self.path = settings.lancedb_path
        self.name = settings.collection
        self.index_min_rows = settings.ann_index_min_rows
        self._table: lancedb.table.Table | None = None
        self._write = threading.Lock()

    def open(self, dimension: int) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        db = lancedb.connect(str(self.path))
        if self.name in db.list_tables().tables:
            table = db.open_table(self.name)
            stored = table.schema.field("vector").type.list_size
            if stored != dimension:
                raise ValueError(
                    f"{self.path}/{self.name} holds {stored}-dimension vectors; the embedder "
                    f"makes {dimension}: use a new APP_COLLECTION or re-ingest"
                )
        else:
            table = db.create_table(self.name, schema=schema(dimension))
        self._table = table

    def close(self) -> None:
        self._table = None

    def add_document(self, records: Sequence[ChunkRecord]) -> bool:
        table = self._t()
        with self._write:
            if self.get_document(records[0].document_id) is not None:
                return False
            table.add(pa.Table.from_pylist([r.row() for r in records], schema=table.schema))
            self._maybe_index(table)
        return True

    def delete_document(self, document_id: str) -> int:
        table = self._t()
        where = f"document_id = {literal(document_id)}"
        with self._write:
            count = table.count_rows(where)
            if count:
                table.delete(where)
        return count

    def get_document(self, document_id: str) -> DocumentInfo | None:
        rows = (
            self._t()
            .search()
            .where(f"document_id = {literal(document_id)} AND position = 0")
            .select(list(DocumentInfo.FIELDS))
            .limit(1)
            .to_list()
        )
        return DocumentInfo.from_row(rows[0]) if rows else None

    def documents(self, limit: int, offset: int) -> list[DocumentInfo]:
        rows = (
            self._t().search().where("position = 0").select(list(DocumentInfo.FIELDS)).limit(None)
        )
        found = sorted(
            (DocumentInfo.from_row(row) for row in rows.to_list()),
            key=lambda d: (-d.ingested_at, d.id),
        )
        return found[offset : offset + limit]

    def search(self, vector: np.ndarray, k: int, where: SearchFilter | None = None) -> list[Hit]:
        query = self._t().search(vector).distance_type("cosine").limit(k)
        query = (
            query.select([*METADATA, "vector", "_distance"])
            .nprobes(NPROBES)
            .refine_factor(REFINE_FACTOR)
        )
        condition = _condition(where)
        if condition:
            query = query.where(condition, prefilter=True)
        return [
            Hit(
                document_id=row["document_id"],
                position=row["position"],
                text=row["text"],
                headings=row["headings"],
                title=row["title"],
                filename=row["filename"],
                score=1.0 - float(row["_distance"]),
                vector=np.asarray(row["vector"], dtype=np.float32),
            )
            for row in query.to_list()
        ]

    def count(self) -> int:
        return self._t().count_rows()

    def _maybe_index(self, table: lancedb.table.Table) -> None:
        """Builds the ANN index once the table is large enough; later adds are folded
        in by `optimize` (until then they are searched exactly, so none is missed)."""
        rows = table.count_rows()
        if rows < self.index_min_rows:
            return
        if not table.list_indices():
            logger.info("building the vector index", extra={"rows": rows})
            table.create_index("vector", config=IvfHnswSq(distance_type="cosine"))
            return
        stats = table.index_stats(table.list_indices()[0].name)
        if stats is not None and stats.num_unindexed_rows > 0.1 * rows:
            table.optimize()

    def _t(self) -> lancedb.table.Table:
        if self._table is None:
            raise RuntimeError("the store is not open")
        return self._table


def _condition(where: SearchFilter | None) -> str:
    if where is None:
        return ""
    parts = []
    if where.document_ids:
        parts.append(f"document_id IN ({', '.join(map(literal, where.document_ids))})")
    if where.content_types:
        parts.append(f"content_type IN ({', '.join(map(literal, where.content_types))})")
    return " AND ".join(parts)
