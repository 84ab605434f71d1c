"""Ingestion: parse, chunk, embed, store - one document at a time, whole or not at all.

A document's id is the hash of its text, so the same content uploaded twice (under any
name) is recognised and adds nothing. Every chunk is embedded before any is written, and
the store writes a document's chunks in one commit: a failure at any step leaves no
chunk behind.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from http import HTTPStatus

from rag_qa.chunking import Chunker
from rag_qa.documents import EmptyDocument, clean_filename, parse
from rag_qa.embeddings import Embedder
from rag_qa.errors import PayloadTooLarge, ServiceError, Unavailable
from rag_qa.observability import Metrics
from rag_qa.settings import Settings
from rag_qa.store import ChunkRecord, DocumentInfo, VectorStore, create_store

logger = logging.getLogger(__name__)


class TooManyChunks(ServiceError):
    status_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "too_many_chunks"


class IngestionBusy(Unavailable):
    code = "ingestion_busy"


@dataclass(frozen=True)
class IngestResult:
    document: DocumentInfo
    created: bool


def document_id_of(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class Ingestor:
    def __init__(
        self,
        settings: Settings,
        embedder: Embedder,
        store: VectorStore,
        metrics: Metrics,
    ) -> None:
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.metrics = metrics
        self.chunker = Chunker(
            embedder.count_tokens, settings.chunk_tokens, settings.chunk_overlap_tokens
        )

    def ingest(self, filename: str, data: bytes) -> IngestResult:
        """Blocking: run it on a worker thread. Raises a ServiceError for bad input."""
        started = time.perf_counter()
        try:
            result = self._ingest(filename, data)
        except ServiceError:
            self.metrics.rag_documents_ingested.labels(result="rejected").inc()
            raise
        except Exception:
            self.metrics.rag_documents_ingested.labels(result="failed").inc()
            raise
        if result.created:
            self.metrics.rag_documents_ingested.labels(result="created").inc()
            self.metrics.rag_chunks_ingested.inc(result.document.chunks)
            self.metrics.rag_ingestion_duration.observe(time.perf_counter() - started)
        else:
            self.metrics.rag_documents_ingested.labels(result="duplicate").inc()
        return result

    def _ingest(self, filename: str, data: bytes) -> IngestResult:
        name = clean_filename(filename)
        if len(data) > self.settings.max_document_bytes:
            raise PayloadTooLarge(
                f"{name!r} has {len(data)} bytes; the limit is {self.settings.max_document_bytes}",
                details={"limit_bytes": self.settings.max_document_bytes},
            )
        if not data.strip():
            raise EmptyDocument(f"{name!r} is empty")
        document = parse(name, data)
        document_id = document_id_of(document.text)
        existing = self.store.get_document(document_id)
        if existing is not None:
            return IngestResult(existing, created=False)
        chunks = self.chunker.split(document)
        if not chunks:
            raise EmptyDocument(f"{name!r} has no text to index")
        if len(chunks) > self.settings.max_document_chunks:
            raise TooManyChunks(
                f"{name!r} makes {len(chunks)} chunks; the limit is "
                f"{self.settings.max_document_chunks}: split it",
                details={"chunks": len(chunks), "limit": self.settings.max_document_chunks},
            )
        vectors = self.embedder.embed([c.embedding_text(document.title) for c in chunks])
        now = time.time()
        records = [
            ChunkRecord(
                document_id=document_id,
                position=chunk.position,
                text=chunk.text,
                headings=chunk.heading_path,
                content_hash=hashlib.sha256(chunk.text.encode()).hexdigest(),
                vector=vector,
                title=document.title,
                filename=name,
                content_type=document.content_type,
                ingested_at=now,
                chunk_count=len(chunks),
            )
            for chunk, vector in zip(chunks, vectors, strict=True)
        ]
        info = DocumentInfo(
            document_id, document.title, name, document.content_type, len(chunks), now
        )
        if not self.store.add_document(records):  # a concurrent upload of the same text
            stored = self.store.get_document(document_id)
            return IngestResult(stored or info, created=False)
        logger.info(
            "document ingested",
            extra={"document_id": document_id, "document": name, "chunks": len(chunks)},
        )
        return IngestResult(info, created=True)


def open_ingestor(
    settings: Settings, metrics: Metrics, embedder: Embedder | None = None
) -> Ingestor:
    """A loaded embedder (`embedder`, else the settings') and the configured store, opened,
    outside the service: for the command line and the evaluation. Blocking."""
    if embedder is None:
        embedder = Embedder(settings, metrics)
        embedder.load()
    store = create_store(settings)
    store.open(embedder.dimension)
    return Ingestor(settings, embedder, store, metrics)
