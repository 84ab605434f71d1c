"""Uploading documents over HTTP: stored once, listed, deleted whole, refused clearly."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from rag_qa.app import create_app
from rag_qa.settings import Settings
from tests.conftest import CORPUS, upload
from tests.live_server import serve
from tests.metrics import metric_samples, metric_value
from tests.pdf import make_pdf

HANDBOOK = (CORPUS / "employee-handbook.md").read_bytes()


@pytest.fixture(scope="module")
def app(make_settings: Callable[..., Settings]) -> FastAPI:
    return create_app(make_settings(max_document_bytes=64 * 1024))


@pytest.fixture(scope="module")
def url(app: FastAPI) -> Iterator[str]:
    with serve(app, timeout_s=120) as base_url:
        yield base_url


def stored_chunks(url: str) -> float:
    return metric_value(httpx.get(url + "/metrics").text, "rag_store_chunks")


def documents(url: str, headers: dict[str, str]) -> list[dict[str, object]]:
    response = httpx.get(url + "/v1/documents", headers=headers)
    assert response.status_code == 200
    return list(response.json()["documents"])


def test_upload_list_get_and_delete(url: str, auth_headers: dict[str, str]) -> None:
    response = upload(url, auth_headers, "handbook.md", HANDBOOK, "text/markdown")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["created"] is True
    document = body["document"]
    assert document["title"] == "Bramblewood Cartography Employee Handbook"
    assert document["filename"] == "handbook.md"
    assert document["content_type"] == "text/markdown"
    assert document["chunks"] > 3
    assert any(d["id"] == document["id"] for d in documents(url, auth_headers))
    got = httpx.get(f"{url}/v1/documents/{document['id']}", headers=auth_headers)
    assert got.json() == document
    assert stored_chunks(url) >= document["chunks"]

    before = stored_chunks(url)
    deleted = httpx.delete(f"{url}/v1/documents/{document['id']}", headers=auth_headers)
    assert deleted.status_code == 200
    assert deleted.json() == {"id": document["id"], "deleted_chunks": document["chunks"]}
    assert stored_chunks(url) == before - document["chunks"]
    assert all(d["id"] != document["id"] for d in documents(url, auth_headers))
    search = httpx.post(
        url + "/v1/search",
        json={"query": "paid annual leave", "filter": {"document_ids": [document["id"]]}},
        headers=auth_headers,
    )
    assert search.json()["results"] == [], "a deleted document's chunks are still found"
    again = httpx.delete(f"{url}/v1/documents/{document['id']}", headers=auth_headers)
    assert again.status_code == 404
    assert again.json()["error"]["code"] == "document_not_found"


def test_the_same_content_again_adds_nothing(url: str, auth_headers: dict[str, str]) -> None:
    first = upload(
        url, auth_headers, "lighthouse.md", (CORPUS / "lighthouse-history.md").read_bytes()
    )
    assert first.status_code == 201
    count = stored_chunks(url)
    listed = len(documents(url, auth_headers))
    # Same text under another name (and with Windows line endings): recognised.
    text = (CORPUS / "lighthouse-history.md").read_bytes().replace(b"\n", b"\r\n")
    second = upload(url, auth_headers, "copy-of-lighthouse.md", text)
    assert second.status_code == 200
    assert second.json()["created"] is False
    assert second.json()["document"]["id"] == first.json()["document"]["id"]
    assert stored_chunks(url) == count
    assert len(documents(url, auth_headers)) == listed
    metrics = httpx.get(url + "/metrics").text
    assert metric_value(metrics, "rag_documents_ingested_total", result="duplicate") >= 1


def test_a_failed_ingestion_leaves_no_chunk(
    app: FastAPI, url: str, auth_headers: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    embedder = app.state.runtime.embedder
    real_embed = embedder.embed

    def failing_embed_midway(texts: list[str], purpose: str = "document") -> np.ndarray:
        """A stand-in for an embedder that dies on a document (out of memory, a lost
        GPU): the first half is embedded, then it fails."""
        real_embed(texts[: len(texts) // 2], purpose)  # type: ignore[arg-type]
        raise RuntimeError("embedding failed midway")

    count = stored_chunks(url)
    listed = len(documents(url, auth_headers))
    monkeypatch.setattr(embedder, "embed", failing_embed_midway)
    data = (CORPUS / "sourdough-guide.md").read_bytes()
    failed = upload(url, auth_headers, "sourdough.md", data)
    assert failed.status_code == 500
    assert failed.json()["error"]["code"] == "internal_error"
    assert stored_chunks(url) == count
    assert len(documents(url, auth_headers)) == listed
    monkeypatch.setattr(embedder, "embed", real_embed)
    retried = upload(url, auth_headers, "sourdough.md", data)
    assert retried.status_code == 201, "a retry after a failure must not look like a duplicate"
    assert stored_chunks(url) == count + retried.json()["document"]["chunks"]


@pytest.mark.parametrize(
    ("name", "data", "status", "code"),
    [
        ("image.png", b"\x89PNG\r\n", 415, "unsupported_media_type"),
        ("notes.docx", b"PK\x03\x04", 415, "unsupported_media_type"),
        ("big.txt", b"word " * 20_000, 413, "payload_too_large"),
        ("empty.txt", b"", 422, "empty_document"),
        ("spaces.md", b" \n\t\n", 422, "empty_document"),
        ("fake.pdf", b"Hello, I am not a PDF at all.", 422, "unparsable_document"),
        ("truncated.pdf", make_pdf(["Some text."])[:60], 422, "unparsable_document"),
        ("latin1.txt", "na\u00efve caf\u00e9".encode("latin-1"), 422, "unparsable_document"),
        ("..", b"text", 422, "invalid_filename"),
    ],
)
def test_bad_uploads_get_a_clear_error(
    url: str, auth_headers: dict[str, str], name: str, data: bytes, status: int, code: str
) -> None:
    count = stored_chunks(url)
    response = upload(url, auth_headers, name, data)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert stored_chunks(url) == count


def test_a_request_without_a_file_is_422(url: str, auth_headers: dict[str, str]) -> None:
    response = httpx.post(url + "/v1/documents", data={"other": "x"}, headers=auth_headers)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("../../../etc/passwd.md", "passwd.md"),
        ("C:\\Users\\me\\report.md", "report.md"),
        ("cafe\u0301 \u202enotes.md", "caf\u00e9 notes.md"),
    ],
)
def test_file_names_are_stored_clean(
    url: str, auth_headers: dict[str, str], raw: str, stored: str
) -> None:
    text = f"A note filed as {stored!r} about tide tables and harbour fees.".encode()
    response = upload(url, auth_headers, raw, text)
    assert response.status_code == 201, response.text
    assert response.json()["document"]["filename"] == stored


def test_a_pdf_upload_is_searchable(url: str, auth_headers: dict[str, str]) -> None:
    pdf = make_pdf(["The Orvald pump station lifts 340 litres per second.", "Maintenance."])
    response = upload(url, auth_headers, "pump.pdf", pdf, "application/pdf")
    assert response.status_code == 201, response.text
    found = httpx.post(
        url + "/v1/search",
        json={"query": "How much water does the pump station move?", "top_k": 1},
        headers=auth_headers,
    ).json()["results"]
    assert "340 litres per second" in found[0]["text"]


@pytest.mark.parametrize("document_id", ["0" * 32, "not-an-id", "A" * 32, "0" * 31 + "%27"])
def test_unknown_documents_are_404(
    url: str, auth_headers: dict[str, str], document_id: str
) -> None:
    for method in ("GET", "DELETE"):
        response = httpx.request(method, f"{url}/v1/documents/{document_id}", headers=auth_headers)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "document_not_found"


def test_ingestion_metrics(url: str, auth_headers: dict[str, str]) -> None:
    upload(url, auth_headers, "bees.txt", (CORPUS / "beekeeping-basics.txt").read_bytes())
    metrics = httpx.get(url + "/metrics").text
    assert metric_value(metrics, "rag_documents_ingested_total", result="created") >= 1
    assert metric_value(metrics, "rag_chunks_ingested_total") > 0
    assert metric_value(metrics, "rag_ingestion_duration_seconds_count") >= 1
    purposes = {
        labels["purpose"] for labels, _ in metric_samples(metrics, "rag_embedded_texts_total")
    }
    assert "document" in purposes
