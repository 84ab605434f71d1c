"""OpenTelemetry's SDK behind the service's spans: a tracer provider and its exporter.

The code makes its spans with OpenTelemetry's API, which does nothing until a provider
records them; this module is that provider, installed per app by the service factory when
APP_TRACING_ENABLED is on. The exporter follows OTEL_TRACES_EXPORTER (otlp, console or
none; otlp by default) and the OTLP exporter reads OTEL_EXPORTER_OTLP_* itself.
"""

from __future__ import annotations

import os

from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

from batch_video.settings import Settings


def configure_tracing(settings: Settings) -> TracerProvider | None:
    """A tracer provider when tracing is on and the SDK is not disabled; None otherwise."""
    if not settings.tracing_enabled or os.environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    provider = TracerProvider(resource=Resource.create({"service.name": settings.service_name}))
    exporter = span_exporter()
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def span_exporter() -> SpanExporter | None:
    """The exporter OTEL_TRACES_EXPORTER names (tests put an in-memory one in its place)."""
    name = os.environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower()
    if name == "none":
        return None
    if name == "console":
        return ConsoleSpanExporter()
    if name == "otlp":
        # OTLP over HTTP/protobuf; the collector in deploy/ accepts it on port 4318.
        return OTLPSpanExporter()
    raise ValueError(f"unsupported OTEL_TRACES_EXPORTER={name!r}; use otlp, console or none")
