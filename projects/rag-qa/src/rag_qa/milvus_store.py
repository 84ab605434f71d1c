"""Milvus: a vector database every replica shares, from one server to a cluster.

The same client code talks to a Milvus server (`APP_MILVUS_URI=http://milvus:19530`) and
to Milvus Lite (`APP_MILVUS_URI=./chunks.db`), which the tests use. Reads are strongly
consistent, so a document is searchable as soon as its upload returns. Milvus has no
multi-row transactions: an insert that fails is undone by deleting what it wrote.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

import numpy as np
from pymilvus import DataType, MilvusClient

from rag_qa.settings import Settings
from rag_qa.store import ChunkRecord, DocumentInfo, Hit, SearchFilter, literal

logger = logging.getLogger(__name__)

METADATA = ["document_id", "position", "text", "headings", "title", "filename"]
MAX_LIST = 16_384  # Milvus caps offset + limit of one query


class MilvusStore:
    def __init__(self, settings: Settings) -> None:
        self.uri = settings.milvus_uri
        self.token = settings.milvus_token.get_secret_value() if settings.milvus_token else ""
        self.name = settings.collection
        self._client: MilvusClient | None = None
        self._write = threading.Lock()

    def open(self, dimension: int) -> None:
        client = MilvusClient(uri=self.uri, token=self.token, timeout=10)
        if not client.has_collection(self.name):
            schema = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=96)
            schema.add_field("document_id", DataType.VARCHAR, max_length=64)
            schema.add_field("position", DataType.INT64)
            schema.add_field("text", DataType.VARCHAR, max_length=65_535)
            schema.add_field("headings", DataType.VARCHAR, max_length=4_096)
            schema.add_field("content_hash", DataType.VARCHAR, max_length=64)
            schema.add_field("title", DataType.VARCHAR, max_length=1_024)
            schema.add_field("filename", DataType.VARCHAR, max_length=1_024)
            schema.add_field("content_type", DataType.VARCHAR, max_length=64)
            schema.add_field("ingested_at", DataType.DOUBLE)
            schema.add_field("chunk_count", DataType.INT64)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
            index = client.prepare_index_params()
            index.add_index(field_name="vector", index_type="AUTOINDEX", metric_type="COSINE")
            client.create_collection(
                self.name, schema=schema, index_params=index, consistency_level="Strong"
            )
        else:
            fields = client.describe_collection(self.name)["fields"]
            stored = next(f["params"].get("dim") for f in fields if f["name"] == "vector")
            if int(stored) != dimension:
                raise ValueError(
                    f"collection {self.name} holds {stored}-dimension vectors; the embedder "
                    f"makes {dimension}: use a new APP_COLLECTION or re-ingest"
                )
        client.load_collection(self.name)
        self._client = client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def add_document(self, records: Sequence[ChunkRecord]) -> bool:
        client = self._c()
        document_id = records[0].document_id
        with self._write:
            if self.get_document(document_id) is not None:
                return False
            try:
                client.insert(self.name, [_milvus_row(r) for r in records])
            except BaseException:
                # Part of the rows may have landed: take them out again.
                client.delete(self.name, filter=f"document_id == {literal(document_id)}")
                raise
        return True

    def delete_document(self, document_id: str) -> int:
        client = self._c()
        where = f"document_id == {literal(document_id)}"
        with self._write:
            count = self._count(where)
            if count:
                client.delete(self.name, filter=where)
        return count

    def get_document(self, document_id: str) -> DocumentInfo | None:
        rows = self._c().query(
            self.name,
            filter=f"document_id == {literal(document_id)} and position == 0",
            output_fields=list(DocumentInfo.FIELDS),
            limit=1,
        )
        return DocumentInfo.from_row(rows[0]) if rows else None

    def documents(self, limit: int, offset: int) -> list[DocumentInfo]:
        rows = self._c().query(
            self.name,
            filter="position == 0",
            output_fields=list(DocumentInfo.FIELDS),
            limit=MAX_LIST,
        )
        found = sorted(
            (DocumentInfo.from_row(r) for r in rows), key=lambda d: (-d.ingested_at, d.id)
        )
        return found[offset : offset + limit]

    def search(self, vector: np.ndarray, k: int, where: SearchFilter | None = None) -> list[Hit]:
        results = self._c().search(
            self.name,
            data=[vector.astype(np.float32).tolist()],
            limit=k,
            filter=_condition(where),
            output_fields=[*METADATA, "vector"],
            search_params={"metric_type": "COSINE"},
        )
        hits = []
        for result in results[0]:
            entity = result["entity"]
            hits.append(
                Hit(
                    document_id=entity["document_id"],
                    position=int(entity["position"]),
                    text=entity["text"],
                    headings=entity["headings"],
                    title=entity["title"],
                    filename=entity["filename"],
                    score=float(result["distance"]),  # COSINE: the similarity itself
                    vector=np.asarray(entity["vector"], dtype=np.float32),
                )
            )
        return hits

    def count(self) -> int:
        return self._count("")

    def _count(self, where: str) -> int:
        rows = self._c().query(self.name, filter=where, output_fields=["count(*)"])
        return int(rows[0]["count(*)"])

    def _c(self) -> MilvusClient:
        if self._client is None:
            raise RuntimeError("the store is not open")
        return self._client


def _milvus_row(record: ChunkRecord) -> dict[str, object]:
    return {**record.row(), "vector": record.vector.astype(np.float32).tolist()}


def _condition(where: SearchFilter | None) -> str:
    if where is None:
        return ""
    parts = []
    if where.document_ids:
        parts.append(f"document_id in [{', '.join(map(literal, where.document_ids))}]")
    if where.content_types:
        parts.append(f"content_type in [{', '.join(map(literal, where.content_types))}]")
    return " and ".join(parts)
