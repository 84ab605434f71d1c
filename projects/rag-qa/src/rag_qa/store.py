"""The vector store interface, and the one `APP_VECTOR_STORE` picks.

Two engines sit behind it: LanceDB, embedded in the service (a folder; the default), and
Milvus, a server or cluster every replica shares. Chunks carry their document's metadata,
so a document is exactly its chunks: listing, counting and deleting need nothing else.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from rag_qa.settings import Settings


@dataclass(frozen=True)
class ChunkRecord:
    document_id: str
    position: int
    text: str
    headings: str  # "Install > On Linux"
    content_hash: str  # sha256 of the text
    vector: np.ndarray
    title: str
    filename: str
    content_type: str
    ingested_at: float  # Unix time
    chunk_count: int  # of the whole document

    @property
    def id(self) -> str:
        return f"{self.document_id}:{self.position}"

    def row(self) -> dict[str, object]:
        """The record as a store row (the vector as float32)."""
        return {
            "id": self.id,
            "document_id": self.document_id,
            "position": self.position,
            "text": self.text,
            "headings": self.headings,
            "content_hash": self.content_hash,
            "title": self.title,
            "filename": self.filename,
            "content_type": self.content_type,
            "ingested_at": self.ingested_at,
            "chunk_count": self.chunk_count,
            "vector": self.vector.astype(np.float32),
        }


@dataclass(frozen=True)
class Hit:
    document_id: str
    position: int
    text: str
    headings: str
    title: str
    filename: str
    score: float  # cosine similarity, higher is closer
    vector: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class DocumentInfo:
    id: str
    title: str
    filename: str
    content_type: str
    chunks: int
    ingested_at: float

    # The columns a document is read from: its first chunk carries them.
    FIELDS = ("document_id", "title", "filename", "content_type", "chunk_count", "ingested_at")

    @classmethod
    def from_row(cls, row: dict[str, object]) -> DocumentInfo:
        return cls(
            id=str(row["document_id"]),
            title=str(row["title"]),
            filename=str(row["filename"]),
            content_type=str(row["content_type"]),
            chunks=int(str(row["chunk_count"])),
            ingested_at=float(str(row["ingested_at"])),
        )


@dataclass(frozen=True)
class SearchFilter:
    """Chunks must match every field given; an empty field does not filter."""

    document_ids: tuple[str, ...] = ()
    content_types: tuple[str, ...] = ()


class VectorStore(Protocol):
    """Blocking calls: the service runs them on worker threads."""

    def open(self, dimension: int) -> None: ...

    def close(self) -> None: ...

    def add_document(self, records: Sequence[ChunkRecord]) -> bool:
        """Stores one document's chunks, all or none; False when it is already there."""
        ...

    def delete_document(self, document_id: str) -> int:
        """Removes every chunk of the document; returns how many there were."""
        ...

    def get_document(self, document_id: str) -> DocumentInfo | None: ...

    def documents(self, limit: int, offset: int) -> list[DocumentInfo]:
        """Newest first."""
        ...

    def search(self, vector: np.ndarray, k: int, where: SearchFilter | None = None) -> list[Hit]:
        """The k chunks closest to `vector`, best first, with their vectors."""
        ...

    def count(self) -> int: ...


def create_store(settings: Settings) -> VectorStore:
    if settings.vector_store == "milvus":
        from rag_qa.milvus_store import MilvusStore

        return MilvusStore(settings)
    from rag_qa.lance_store import LanceStore

    return LanceStore(settings)


def literal(value: str) -> str:
    """A quoted string for a filter expression. Only ids and content types ever go into
    one, so anything beyond their characters is refused rather than escaped."""
    if not _SAFE_LITERAL.fullmatch(value):
        raise ValueError(f"{value!r} cannot appear in a filter")
    return f"'{value}'"


_SAFE_LITERAL = re.compile(r"[0-9A-Za-z][0-9A-Za-z/._+-]{0,127}")
