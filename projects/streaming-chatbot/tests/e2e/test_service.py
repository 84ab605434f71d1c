"""Probes, metrics and the page, on a real gateway."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx

from streaming_chatbot.app import create_app
from streaming_chatbot.settings import Settings
from tests.conftest import chat_body
from tests.live_server import serve
from tests.metrics import metric_value


def test_probes_report_ready(base_url: str) -> None:
    assert httpx.get(base_url + "/healthz").json() == {"status": "ok"}
    assert httpx.get(base_url + "/readyz").json() == {"status": "ready"}


def test_a_missing_model_fails_both_probes_with_the_reason(
    make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    settings = make_settings(model_path=tmp_path / "nowhere")
    with serve(create_app(settings), wait_ready=False) as url:
        for _ in range(100):
            response = httpx.get(url + "/healthz")
            if response.status_code == 503:
                break
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "model_load_failed"
        assert "nowhere" in response.json()["error"]["message"]
        assert httpx.get(url + "/readyz").status_code == 503


def test_generation_metrics_are_recorded(base_url: str, auth_headers: dict[str, str]) -> None:
    before = httpx.get(base_url + "/metrics").text
    response = httpx.post(
        base_url + "/v1/chat/completions",
        json=chat_body("Count from one to five.", max_tokens=12, ignore_eos=True, stream=True),
        headers=auth_headers,
        timeout=60,
    )
    assert response.status_code == 200
    after = httpx.get(base_url + "/metrics").text

    def grew(name: str) -> float:
        return metric_value(after, name) - metric_value(before, name)

    assert grew("llm_time_to_first_token_seconds_count") == 1
    assert grew("llm_inter_token_latency_seconds_count") >= 5
    assert grew("llm_output_tokens_per_second_count") == 1
    assert grew("llm_completion_tokens") == 12
    assert grew("llm_prompt_tokens") > 5
    assert metric_value(after, "llm_active_streams") == 0
    assert metric_value(after, "llm_max_streams") == 16
    assert metric_value(after, "model_ready") == 1
    assert metric_value(after, "llm_queue_depth") == 0


def test_the_chat_page_and_its_script_are_served(base_url: str) -> None:
    page = httpx.get(base_url + "/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script src="/static/chat.js">' in page.text
    script = httpx.get(base_url + "/static/chat.js")
    assert script.status_code == 200
    assert "getReader" in script.text
    assert httpx.get(base_url + "/static/missing.js").status_code == 404


def test_the_openapi_schema_lists_the_routes(base_url: str) -> None:
    paths = httpx.get(base_url + "/openapi.json").json()["paths"]
    for path in (
        "/v1/chat/completions",
        "/v1/models",
        "/v1/conversations",
        "/v1/conversations/{conversation_id}/messages",
    ):
        assert path in paths
