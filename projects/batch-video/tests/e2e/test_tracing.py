"""OpenTelemetry: every API request is one server span in its caller's trace, and its access
log line carries the trace id; with tracing off, nothing is exported."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from opentelemetry.trace import SpanKind

from batch_video.app import create_app
from batch_video.settings import Settings
from tests.live_server import serve
from tests.spans import finished, record_spans

pytestmark = pytest.mark.tracing
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACEPARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


def test_each_request_is_a_server_span_in_the_callers_trace(
    make_settings: Callable[..., Settings],
    auth_headers: dict[str, str],
    send_traffic: Callable[[httpx.Client], None],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    exporter = record_spans(monkeypatch)
    app = create_app(make_settings(tracing_enabled=True, log_json=True))
    with serve(app) as url:
        headers = {"traceparent": TRACEPARENT, **auth_headers}
        with httpx.Client(base_url=url, timeout=120, headers=headers) as client:
            send_traffic(client)
    logs = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    access = [entry for entry in logs if str(entry.get("route", "")).startswith("/v1/")]
    assert access, "no access log line for an API request"
    name = f"{access[0]['message'].split()[0]} {access[0]['route']}"
    servers = [
        span
        for span in finished(exporter, name)
        if span.kind == SpanKind.SERVER and str(span.attributes["http.route"]).startswith("/v1/")
    ]
    for entry in access:
        assert entry["trace_id"] == TRACE_ID
    assert servers
    for span in servers:
        assert span.context.trace_id == int(TRACE_ID, 16)
        method, route = span.attributes["http.request.method"], span.attributes["http.route"]
        assert span.name == f"{method} {route}"
        assert span.attributes["request.id"]
    statuses = {span.attributes["http.response.status_code"] for span in servers}
    assert any(200 <= status < 300 for status in statuses)


def test_tracing_is_off_by_default(
    make_settings: Callable[..., Settings],
    auth_headers: dict[str, str],
    send_traffic: Callable[[httpx.Client], None],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    exporter = record_spans(monkeypatch)
    with (
        serve(create_app(make_settings())) as url,
        httpx.Client(base_url=url, timeout=120, headers=auth_headers) as client,
    ):
        send_traffic(client)
    assert exporter.get_finished_spans() == ()
