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

from rag_qa.settings import Settings

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Request latency: from a millisecond (a probe) to ten seconds (a large batch under load).
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Time to first token includes queueing and prefill: seconds, not milliseconds, at load.
TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0)
# A document takes from milliseconds (a note) to minutes (a book on a small CPU).
INGESTION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
SCORE_BUCKETS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


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
        self.llm_time_to_first_token = Histogram(
            "llm_time_to_first_token_seconds",
            "From request arrival to the first generated text.",
            buckets=TTFT_BUCKETS,
            registry=reg,
        )
        self.llm_inter_token_latency = Histogram(
            "llm_inter_token_latency_seconds",
            "Gap between two streamed pieces of text.",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.llm_output_tokens_per_second = Histogram(
            "llm_output_tokens_per_second",
            "Decode speed of each finished generation, after its first token.",
            buckets=(1, 5, 10, 25, 50, 100, 200, 400, 800, 1600, 3200),
            registry=reg,
        )
        self.llm_active_streams = Gauge(
            "llm_active_streams", "Generations this replica is serving.", registry=reg
        )
        self.llm_max_streams = Gauge(
            "llm_max_streams", "Generations this replica serves at most.", registry=reg
        )
        self.llm_queue_depth = Gauge(
            "llm_queue_depth",
            "Generations admitted but waiting for the embedded engine.",
            registry=reg,
        )
        self.llm_engine_running = Gauge(
            "llm_engine_running", "Generations the embedded engine is decoding.", registry=reg
        )
        self.llm_engine_generated_tokens = Counter(
            "llm_engine_generated_tokens_total",
            "Tokens the embedded engine decoded, delivered or not.",
            registry=reg,
        )
        self.llm_prompt_tokens = Counter(
            "llm_prompt_tokens_total", "Prompt tokens of finished generations.", registry=reg
        )
        self.llm_completion_tokens = Counter(
            "llm_completion_tokens_total",
            "Completion tokens of finished generations.",
            registry=reg,
        )
        self.llm_cancellations = Counter(
            "llm_cancellations_total",
            "Generations stopped early, by reason (client_disconnect, timeout).",
            ["reason"],
            registry=reg,
        )
        self.llm_rejected = Counter(
            "llm_rejected_total",
            "Requests turned away, by reason (too_many_streams, rate_limited, context_length).",
            ["reason"],
            registry=reg,
        )
        self.rag_documents_ingested = Counter(
            "rag_documents_ingested_total",
            "Documents offered for ingestion, by result (created, duplicate, rejected, failed).",
            ["result"],
            registry=reg,
        )
        self.rag_chunks_ingested = Counter(
            "rag_chunks_ingested_total", "Chunks written to the vector store.", registry=reg
        )
        self.rag_ingestion_duration = Histogram(
            "rag_ingestion_duration_seconds",
            "Parse, chunk, embed and store of one new document.",
            buckets=INGESTION_BUCKETS,
            registry=reg,
        )
        self.rag_embedding_duration = Histogram(
            "rag_embedding_duration_seconds",
            "One embedding batch, by purpose (document, query).",
            ["purpose"],
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.rag_embedded_texts = Counter(
            "rag_embedded_texts_total",
            "Texts embedded, by purpose (document, query).",
            ["purpose"],
            registry=reg,
        )
        self.rag_retrieval_duration = Histogram(
            "rag_retrieval_duration_seconds",
            "Vector search in the store, after the question is embedded.",
            buckets=LATENCY_BUCKETS,
            registry=reg,
        )
        self.rag_top_score = Histogram(
            "rag_top_score",
            "Cosine similarity of the best chunk found for each question.",
            buckets=SCORE_BUCKETS,
            registry=reg,
        )
        self.rag_questions = Counter(
            "rag_questions_total",
            "Questions asked, by outcome (answered, no_answer).",
            ["outcome"],
            registry=reg,
        )
        self.rag_store_chunks = Gauge(
            "rag_store_chunks",
            "Chunks in the vector store, as this replica last saw.",
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
