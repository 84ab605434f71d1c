"""Spans recorded in memory: tests put this exporter where OTEL_TRACES_EXPORTER's would be."""

from __future__ import annotations

import time

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from batch_video import tracing


def record_spans(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """An exporter every app made from now on (with tracing on) sends its spans to."""
    exporter = InMemorySpanExporter()
    monkeypatch.setattr(tracing, "span_exporter", lambda: exporter)
    return exporter


def finished(exporter: InMemorySpanExporter, name: str, timeout_s: float = 5) -> list[ReadableSpan]:
    """The finished spans once one called `name` is among them (the batch processor flushes
    when the app shuts down)."""
    deadline = time.monotonic() + timeout_s
    while not any(span.name == name for span in exporter.get_finished_spans()):
        assert time.monotonic() < deadline, [s.name for s in exporter.get_finished_spans()]
        time.sleep(0.05)
    return list(exporter.get_finished_spans())
