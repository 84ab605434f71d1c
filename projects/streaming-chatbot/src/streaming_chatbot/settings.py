"""Service settings, read from `APP_*` environment variables or a `.env` file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service; override one with `APP_<NAME>`, e.g. `APP_PORT=9000`."""

    model_config = SettingsConfigDict(
        env_prefix="APP_", env_file=".env", extra="ignore", protected_namespaces=()
    )

    service_name: str = "streaming-chatbot"
    host: str = "0.0.0.0"  # noqa: S104 - a container must listen on every interface
    port: int = Field(default=8000, ge=1, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_json: bool = True
    max_body_bytes: int = Field(default=8 * 1024 * 1024, ge=1024)
    # Proxies whose X-Forwarded-For names the client (comma-separated addresses or
    # networks, such as the ingress pods' 10.0.0.0/8; "*" trusts any). Empty: the header is
    # ignored and the client is the connection's peer, so nobody can pick their own address
    # (per-client rate limits and logs key on it).
    trusted_proxies: str = ""
    # Memory that requests in flight may hold at once (admission.py): set outright, or a
    # share of what the memory limit leaves once the model is loaded. The limit defaults
    # to the cgroup's, the container's; the chart sets it from the pod's resources.
    request_memory_bytes: int | None = Field(default=None, ge=0)
    request_memory_fraction: float = Field(default=0.5, gt=0, le=1)
    memory_limit_bytes: int | None = Field(default=None, ge=1)
    retry_after_s: int = Field(default=1, ge=1)
    warmup_iterations: int = Field(default=2, ge=0)

    # The engine: "embedded" runs the model in this process with transformers (the CPU
    # default, for development and small deployments); "vllm" calls a vLLM server.
    engine: Literal["embedded", "vllm"] = "embedded"
    # A Hugging Face model folder (config, tokenizer, safetensors weights). The gateway
    # always loads its tokenizer, to count tokens; the embedded engine loads the weights.
    model_path: Path = Path("models/smollm2")
    model_name: str = "smollm2-135m-instruct"  # the id clients send and /v1/models lists
    # Prompt plus answer, in tokens; with vLLM, the same as its --max-model-len.
    max_context_tokens: int = Field(default=2048, ge=16)
    default_max_tokens: int = Field(default=512, ge=1)

    # Embedded engine: generations decoded at once, each on its own thread.
    embedded_concurrency: int = Field(default=2, ge=1)

    # vLLM engine: the base URL of its OpenAI-compatible server (without /v1).
    vllm_url: str = "http://127.0.0.1:8001"
    vllm_model: str | None = None  # the name vLLM serves the model as; default model_name
    vllm_api_key: SecretStr | None = None  # vLLM's --api-key, if it was started with one
    # Sequences vLLM decodes at once for this replica: its --max-num-seqs (256 by default),
    # divided by the gateway replicas that share it. Admission counts on it.
    vllm_concurrency: int = Field(default=256, ge=1)
    # A dead engine must fail fast: the connect timeout bounds the 503 for "vLLM is down".
    upstream_connect_timeout_s: float = Field(default=1.0, gt=0)
    # Up to the first token: queueing in the engine plus prefill. Then 504.
    first_token_timeout_s: float = Field(default=30.0, gt=0)
    # Longest silence between two tokens once a stream has started.
    stream_idle_timeout_s: float = Field(default=30.0, gt=0)

    # Generations at once per replica; beyond it, or when a stream could not start within
    # first_token_timeout_s behind those the engine is decoding, clients get 429 and
    # Retry-After at once.
    max_concurrent_streams: int = Field(default=16, ge=1)
    # Token bucket per API key (or client address): sustained requests per second and
    # burst. 0 turns the limit off.
    rate_limit_rps: float = Field(default=5.0, ge=0)
    rate_limit_burst: int = Field(default=20, ge=1)
    # redis://host:6379/0 shares the rate limits, and whatever else the service keeps in
    # Redis, between replicas; empty keeps it all in this process.
    redis_url: str | None = None
    redis_prefix: str = "streaming-chatbot"

    # Where the embedded engine runs the model; the vLLM engine ignores it.
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    # Intra-op threads per generation; with embedded_concurrency generations at once,
    # their product should not exceed the cores the service gets.
    torch_threads: int = Field(default=1, ge=1)

    # Conversations: history kept server-side per session id, trimmed to the context.
    system_prompt: str = "You are a helpful assistant. Answer briefly and accurately."
    conversation_ttl_s: int = Field(default=24 * 3600, ge=60)  # idle time before deletion
    max_conversations: int = Field(default=10_000, ge=1)  # in memory; Redis uses the TTL
    max_message_chars: int = Field(default=32_000, ge=1)

    # Traces are exported as the standard OTEL_* variables say (OTEL_EXPORTER_OTLP_ENDPOINT,
    # OTEL_TRACES_EXPORTER, OTEL_TRACES_SAMPLER, ...), once this switch is on.
    tracing_enabled: bool = False
