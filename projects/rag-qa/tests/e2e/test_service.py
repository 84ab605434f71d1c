"""Probes, metrics and the OpenAPI schema on a real service; the Milvus store end to end."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from rag_qa.app import create_app
from rag_qa.settings import Settings
from tests.conftest import CORPUS, upload
from tests.live_server import serve
from tests.metrics import metric_value


def test_probes_report_ready(base_url: str) -> None:
    assert httpx.get(base_url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(base_url + "/readyz").json() == {"status": "ready"}
    metrics = httpx.get(base_url + "/metrics").text
    assert metric_value(metrics, "model_ready") == 1
    assert metric_value(metrics, "rag_store_chunks") == 0


@pytest.mark.parametrize(
    ("setting", "reason"),
    [("embedding_model_path", "embedding model"), ("model_path", "tokenizer")],
)
def test_a_missing_model_fails_both_probes_with_the_reason(
    make_settings: Callable[..., Settings], tmp_path: Path, setting: str, reason: str
) -> None:
    settings = make_settings(**{setting: tmp_path / "nowhere"})
    with serve(create_app(settings), wait_ready=False) as url:
        for _ in range(200):
            response = httpx.get(url + "/healthz")
            if response.status_code == 503:
                break
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "model_load_failed"
        assert reason in response.json()["error"]["message"]
        assert httpx.get(url + "/readyz").status_code == 503


def test_the_openapi_schema_lists_the_routes(base_url: str) -> None:
    paths = httpx.get(base_url + "/openapi.json").json()["paths"]
    for path in ("/v1/documents", "/v1/documents/{document_id}", "/v1/search", "/v1/ask"):
        assert path in paths


@pytest.mark.milvus
def test_the_service_on_milvus_ingests_searches_and_deletes(
    make_settings: Callable[..., Settings], tmp_path: Path, auth_headers: dict[str, str]
) -> None:
    pytest.importorskip("milvus_lite", reason="milvus-lite is not installed")
    settings = make_settings(vector_store="milvus", milvus_uri=str(tmp_path / "chunks.db"))
    with serve(create_app(settings), timeout_s=120) as url:
        data = (CORPUS / "board-game-rules.md").read_bytes()
        created = upload(url, auth_headers, "rules.md", data)
        assert created.status_code == 201, created.text
        assert upload(url, auth_headers, "rules-again.md", data).status_code == 200
        document = created.json()["document"]
        results = httpx.post(
            url + "/v1/search", json={"query": "How do you win the game?"}, headers=auth_headers
        ).json()["results"]
        assert results
        assert results[0]["document_id"] == document["id"]
        deleted = httpx.delete(f"{url}/v1/documents/{document['id']}", headers=auth_headers)
        assert deleted.json()["deleted_chunks"] == document["chunks"]
        assert metric_value(httpx.get(url + "/metrics").text, "rag_store_chunks") == 0
