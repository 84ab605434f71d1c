"""OpenTelemetry spans of a classification: preprocess and queue under the request, and the
batch's inference span linked to the queue spans it served."""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from opentelemetry.trace import SpanKind

from image_classification.app import create_app
from image_classification.settings import Settings
from tests.live_server import serve
from tests.spans import finished, record_spans

pytestmark = pytest.mark.tracing

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def test_a_request_produces_linked_spans_under_the_callers_trace(
    make_settings: Callable[..., Settings],
    samples: dict[str, bytes],
    auth_headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    exporter = record_spans(monkeypatch)
    app = create_app(make_settings(tracing_enabled=True))
    traceparent = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
    with serve(app) as url:
        response = httpx.post(
            f"{url}/v1/classify",
            files={"files": ("5.png", samples["5"], "image/png")},
            headers={"traceparent": traceparent, **auth_headers},
        )
        assert response.status_code == 200
    # Leaving serve() shut the app down, which flushed the batch span processor.
    done = finished(exporter, "POST /v1/classify")
    spans = {s.name: s for s in done if s.context.trace_id == int(TRACE_ID, 16)}
    server = spans["POST /v1/classify"]
    assert server.kind == SpanKind.SERVER
    assert server.attributes["http.route"] == "/v1/classify"
    assert server.attributes["http.response.status_code"] == 200
    assert spans["preprocess"].parent.span_id == server.context.span_id
    assert spans["queue"].parent.span_id == server.context.span_id
    inference = [s for s in done if s.name == "inference"]
    linked = [
        s
        for s in inference
        if any(link.context.span_id == spans["queue"].context.span_id for link in s.links)
    ]
    assert linked, "no inference span links to the request's queue span"
    assert linked[0].attributes["batch.size"] >= 1
    logs = [
        json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")
    ]
    access = [entry for entry in logs if entry.get("route") == "/v1/classify"]
    assert access[0]["trace_id"] == TRACE_ID
