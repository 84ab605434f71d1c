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

from ensemble.settings import Settings

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Request latency: from a millisecond (a probe) to ten seconds (a large batch under load).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Items per model call: powers of two up to the largest batch a GPU usually takes.
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
# Agreement between members per input: all agree (1.0), a majority, half or fewer.
AGREEMENT_BUCKETS = (0.2, 0.34, 0.5, 0.67, 0.75, 0.99, 1.0)
# Combining a few arrays of probabilities: microseconds to a millisecond.
AGGREGATION_BUCKETS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 1e-2)


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
        self.inference_latency = Histogram(
            "inference_duration_seconds",
            "Time the model takes for one batch.",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.queue_wait = Histogram(
            "inference_queue_wait_seconds",
            "Time an item waits in the batching queue before its batch starts.",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.batch_size = Histogram(
            "inference_batch_size",
            "Items per model call; above 1 when requests are merged.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=reg,
        )
        self.queue_depth = Gauge(
            "inference_queue_depth", "Items waiting for the model.", registry=reg
        )
        self.queue_capacity = Gauge(
            "inference_queue_capacity", "Items the queue holds before rejecting.", registry=reg
        )
        self.rejected = Counter(
            "inference_rejected_total",
            "Items turned away, by reason (queue_full, timeout); a request refused on "
            "arrival, before its items are read, counts as one.",
            ["reason"],
            registry=reg,
        )
        self.member_latency = Histogram(
            "ensemble_member_duration_seconds",
            "Time from fan-out to a member's answer or failure, by member.",
            ["member"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.member_calls = Counter(
            "ensemble_member_calls_total",
            "Member calls by member and outcome: ok, or why it was left out (deadline, "
            "error, overloaded, circuit_open, not_loaded).",
            ["member", "outcome"],
            registry=reg,
        )
        self.member_deadline_misses = Counter(
            "ensemble_member_deadline_misses_total",
            "Member calls that missed their deadline, by member.",
            ["member"],
            registry=reg,
        )
        self.member_hedges = Counter(
            "ensemble_member_hedges_total",
            "Second calls sent to a straggling member, by member and which call answered.",
            ["member", "answered_by"],
            registry=reg,
        )
        self.breaker_state = Gauge(
            "ensemble_breaker_state",
            "Each member's circuit breaker: 0 closed, 1 half-open (probing), 2 open.",
            ["member"],
            registry=reg,
        )
        self.member_weight = Gauge(
            "ensemble_member_weight",
            "Each member's weight in the weighted mean, and whether it is required (label).",
            ["member", "required"],
            registry=reg,
        )
        self.member_inference_latency = Histogram(
            "ensemble_member_inference_duration_seconds",
            "Time a member's model takes for one batch, by member.",
            ["member"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.member_queue_wait = Histogram(
            "ensemble_member_queue_wait_seconds",
            "Time an item waits in a member's batching queue, by member.",
            ["member"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.member_batch_size = Histogram(
            "ensemble_member_batch_size",
            "Items per model call, by member.",
            ["member"],
            buckets=BATCH_SIZE_BUCKETS,
            registry=reg,
        )
        self.member_queue_depth = Gauge(
            "ensemble_member_queue_depth",
            "Items waiting for a member's model.",
            ["member"],
            registry=reg,
        )
        self.member_queue_capacity = Gauge(
            "ensemble_member_queue_capacity",
            "Items a member's queue holds before refusing.",
            ["member"],
            registry=reg,
        )
        self.member_rejected = Counter(
            "ensemble_member_rejected_total",
            "Items a member's batcher turned away, by member and reason.",
            ["member", "reason"],
            registry=reg,
        )
        self.agreement = Histogram(
            "ensemble_agreement_ratio",
            "Per input, the share of answering members whose top label is the ensemble's.",
            buckets=AGREEMENT_BUCKETS,
            registry=reg,
        )
        self.aggregation_latency = Histogram(
            "ensemble_aggregation_duration_seconds",
            "Time spent combining member answers, by aggregation.",
            ["aggregation"],
            buckets=AGGREGATION_BUCKETS,
            registry=reg,
        )
        self.degraded = Counter(
            "ensemble_degraded_responses_total",
            "Responses given without a member, by the member left out and why.",
            ["member", "reason"],
            registry=reg,
        )
        self.predictions = Counter(
            "predictions_total",
            "Inputs answered, by the ensemble's top label.",
            ["label"],
            registry=reg,
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
