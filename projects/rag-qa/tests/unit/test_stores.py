"""Both vector stores behind one interface: LanceDB, and Milvus through Milvus Lite.

Milvus Lite is the real Milvus engine in-process, reached with the same client code as
a Milvus server or cluster.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from rag_qa.settings import Settings
from rag_qa.store import ChunkRecord, SearchFilter, VectorStore, create_store

DIMENSION = 8


@pytest.fixture(params=["lancedb", pytest.param("milvus", marks=pytest.mark.milvus)])
def store(
    request: pytest.FixtureRequest, make_settings: Callable[..., Settings], tmp_path: Path
) -> Iterator[VectorStore]:
    if request.param == "milvus":
        pytest.importorskip("milvus_lite", reason="milvus-lite is not installed")
        settings = make_settings(vector_store="milvus", milvus_uri=str(tmp_path / "milvus.db"))
    else:
        settings = make_settings()
    opened = create_store(settings)
    opened.open(DIMENSION)
    yield opened
    opened.close()


def unit(seed: int) -> np.ndarray:
    vector = np.random.default_rng(seed).standard_normal(DIMENSION).astype(np.float32)
    return vector / np.linalg.norm(vector)


def records(document_id: str, count: int, *, seed: int = 0, **fields: object) -> list[ChunkRecord]:
    values: dict[str, object] = {
        "title": f"Title {document_id[:4]}",
        "filename": f"{document_id[:4]}.md",
        "content_type": "text/markdown",
        "ingested_at": 1_700_000_000.0 + seed,
        **fields,
    }
    return [
        ChunkRecord(
            document_id=document_id,
            position=i,
            text=f"chunk {i} of {document_id}",
            headings="Part",
            content_hash=f"{i:064x}",
            vector=unit(seed * 1000 + i),
            chunk_count=count,
            **values,  # type: ignore[arg-type]
        )
        for i in range(count)
    ]


A = "a" * 32
B = "b" * 32


def test_add_list_get_search_and_delete(store: VectorStore) -> None:
    assert store.add_document(records(A, 3, seed=1))
    assert store.add_document(records(B, 2, seed=2, content_type="text/plain"))
    assert store.count() == 5
    assert [d.id for d in store.documents(10, 0)] == [B, A]  # newest first
    assert [d.id for d in store.documents(1, 1)] == [A]
    info = store.get_document(A)
    assert info is not None
    assert (info.chunks, info.title, info.content_type) == (3, f"Title {A[:4]}", "text/markdown")

    hits = store.search(unit(1001), 3)
    assert (hits[0].document_id, hits[0].position) == (A, 1)
    assert hits[0].score == pytest.approx(1.0, abs=1e-3)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    assert hits[0].vector is not None
    assert hits[0].vector.shape == (DIMENSION,)

    only_b = store.search(unit(1001), 5, SearchFilter(document_ids=(B,)))
    assert {h.document_id for h in only_b} == {B}
    plain = store.search(unit(1001), 5, SearchFilter(content_types=("text/plain",)))
    assert {h.document_id for h in plain} == {B}

    assert store.delete_document(A) == 3
    assert store.delete_document(A) == 0
    assert store.get_document(A) is None
    assert store.count() == 2
    assert all(h.document_id == B for h in store.search(unit(1001), 5))


def test_adding_a_stored_document_again_adds_nothing(store: VectorStore) -> None:
    assert store.add_document(records(A, 3))
    assert not store.add_document(records(A, 3))
    assert store.count() == 3


def test_a_failed_add_leaves_no_chunk(store: VectorStore) -> None:
    good = records(A, 4)
    # The store refuses the last chunk (its vector has the wrong dimension) after the
    # first three were accepted for writing: none may remain.
    bad = [*good[:3], ChunkRecord(**{**vars(good[3]), "vector": np.ones(3, np.float32)})]
    with pytest.raises(Exception):  # noqa: B017, PT011 - each engine raises its own type
        store.add_document(bad)
    assert store.count() == 0
    assert store.get_document(A) is None
    assert store.add_document(good)
    assert store.count() == 4


def test_filters_refuse_anything_but_ids_and_types(store: VectorStore) -> None:
    with pytest.raises(ValueError, match="cannot appear in a filter"):
        store.search(unit(1), 3, SearchFilter(document_ids=("x' OR '1'='1",)))
