"""vLLM's own metrics against a live vLLM server (VLLM_PYTHON names a Python with vLLM)."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import chat_body
from tests.deploy.test_observability import concrete, exported_names, metric_names
from tests.deploy.test_vllm_metrics import vllm_names, vllm_queries


@pytest.mark.vllm
def test_vllm_queries_read_only_what_the_live_vllm_server_exports(vllm_url: str) -> None:
    """With VLLM_PYTHON set: a real vLLM's /metrics, after a streamed chat so that its
    histograms have samples, holds every vllm:* name the dashboard and rules read."""
    with httpx.Client(base_url=vllm_url, timeout=120) as client:
        body = chat_body("What is the capital of France?", stream=True)
        with client.stream("POST", "/v1/chat/completions", json=body) as response:
            assert response.status_code == 200
            for _ in response.iter_lines():
                pass
        live = exported_names(client.get("/metrics").text)
    for title, expr in vllm_queries():
        engine = {name for name in metric_names(concrete(expr)) if name.startswith("vllm:")}
        assert engine <= live, f"{title}: {engine - live}"
    # The committed list still matches the engine the tests run.
    assert {name for name in vllm_names() if not name.endswith("_created")} <= live
