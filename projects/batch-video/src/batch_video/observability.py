"""Metrics and structured logs.

Metrics live on a registry owned by each app instance, so several apps (tests, workers)
never collide. Logs are one JSON object per line for Loki, each carrying the request id
and, inside a recorded span, the trace and span ids.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime

from opentelemetry import trace
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from batch_video.settings import Settings

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Request latency: from a millisecond (a probe) to ten seconds (a large batch under load).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The service's Prometheus metrics, registered on their own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        reg = self.registry
        # CPU seconds, resident memory and start time of this process (Linux): the
        # dashboard's saturation panel and the restart alert read them.
        ProcessCollector(registry=reg)
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests by route, method and status code.",
            ["route", "method", "status"],
            registry=reg,
        )
        self.request_latency = Histogram(
            "http_request_duration_seconds",
            "Time from request start to response end, by route and method.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.in_flight = Gauge(
            "http_requests_in_flight", "Requests being served right now.", registry=reg
        )
        self.memory_budget = Gauge(
            "admission_memory_budget_bytes",
            "Bytes that requests in flight may hold at once.",
            registry=reg,
        )
        self.memory_reserved = Gauge(
            "admission_memory_reserved_bytes",
            "Bytes reserved by the requests in flight.",
            registry=reg,
        )
        self.memory_rejected = Counter(
            "admission_memory_rejected_total",
            "Requests answered 503 because the memory budget could not hold them.",
            registry=reg,
        )
        self.jobs = Counter(
            "video_jobs_total",
            "Jobs ended here, by outcome (done, cancelled, interrupted, elsewhere, error).",
            ["outcome"],
            registry=reg,
        )
        self.jobs_refused = Counter(
            "video_jobs_refused_total", "Jobs refused because the queue was full.", registry=reg
        )
        self.jobs_queued = Gauge("video_jobs_queued", "Jobs waiting to run.", registry=reg)
        self.jobs_running = Gauge("video_jobs_running", "Jobs running.", registry=reg)
        self.videos = Counter(
            "video_videos_total",
            "Videos through a job, by status (done, failed, cancelled).",
            ["status"],
            registry=reg,
        )
        self.frames_decoded = Counter(
            "video_frames_decoded_total", "Frames the decoder produced.", registry=reg
        )
        self.frames_analysed = Counter(
            "video_frames_analysed_total", "Frames the classifier analysed.", registry=reg
        )
        self.model_load_seconds = Gauge(
            "model_load_duration_seconds", "Time taken to load and warm up the model.", registry=reg
        )
        self.model_ready = Gauge(
            "model_ready", "1 once the model is loaded and warmed up.", registry=reg
        )


class JsonFormatter(logging.Formatter):
    """One JSON object per line, with the request id and the trace context."""

    _RESERVED = frozenset(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = format(span_context.trace_id, "032x")
            entry["span_id"] = format(span_context.span_id, "016x")
        for key, value in vars(record).items():
            if key not in self._RESERVED and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stdout)
    if settings.log_json:
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    # uvicorn's access log repeats what the request middleware logs, in another format.
    logging.getLogger("uvicorn.access").disabled = True
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
