"""OpenTelemetry: a question joins the caller's trace, and its logs carry the ids."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from rag_qa.app import create_app
from rag_qa.settings import Settings
from tests.live_server import serve

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_search_is_one_server_span_in_the_callers_trace(
    make_settings: Callable[..., Settings],
    auth_headers: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    exporter = InMemorySpanExporter()
    app = create_app(make_settings(tracing_enabled=True, log_json=True), span_exporter=exporter)
    with serve(app) as url:
        response = httpx.post(
            url + "/v1/search",
            json={"query": "hi"},
            headers={"traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01", **auth_headers},
        )
        assert response.status_code == 200
    deadline = time.monotonic() + 5
    name = "POST /v1/search"
    while not any(s.name == name for s in exporter.get_finished_spans()):
        assert time.monotonic() < deadline, [s.name for s in exporter.get_finished_spans()]
        time.sleep(0.05)
    [server] = [s for s in exporter.get_finished_spans() if s.name == name]
    assert server.kind == SpanKind.SERVER
    assert server.context.trace_id == int(TRACE_ID, 16)
    assert server.attributes["http.response.status_code"] == 200
    logs = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    access = [entry for entry in logs if entry.get("message", "").startswith(name)]
    assert access, "no access log line for the request"
    assert access[0]["trace_id"] == TRACE_ID
