"""Service settings, read from `APP_*` environment variables or a `.env` file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service; override one with `APP_<NAME>`, e.g. `APP_PORT=9000`."""

    model_config = SettingsConfigDict(
        env_prefix="APP_", env_file=".env", extra="ignore", protected_namespaces=()
    )

    service_name: str = "ensemble"
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

    # Batches the model runs at once, each on its own thread. On CPU, one per core you
    # give the service (with torch_threads=1) keeps every core busy; on a GPU one suffices.
    inference_workers: int = Field(default=2, ge=1)
    # How long a request waits for its results, queueing included, before a 504.
    request_timeout_s: float = Field(default=10.0, gt=0)
    # Dynamic micro-batching: requests merge into one forward pass of up to
    # max_batch_size items, waiting at most max_wait_ms for the batch to fill while other
    # requests are in flight. Small CPUs run CNNs faster per image at batch 8 than at 32;
    # GPUs want larger batches.
    max_batch_size: int = Field(default=8, ge=1)
    max_wait_ms: float = Field(default=2.0, ge=0)
    # Items (not requests) waiting for the model; beyond it requests get 503.
    max_queue_size: int = Field(default=256, ge=1)

    device: Literal["auto", "cpu", "cuda"] = "cpu"
    # The members file: each member's runtime, file, weight, deadline and whether the
    # ensemble may answer without it (see config.py). The batching settings above are the
    # defaults of a member that sets none of its own.
    members_path: Path = Path("models/demo/members.yaml")
    # How member answers combine when a request does not say: mean, weighted (by each
    # member's weight), vote, or stacking (the combiner `fit-stacker` fits, named in the
    # members file).
    aggregation: Literal["mean", "weighted", "vote", "stacking"] = "weighted"
    # Intra-op threads of torch members, process-wide in torch: one, with each member's
    # workers running its batches side by side, keeps members from fighting for the cores.
    torch_threads: int = Field(default=1, ge=1)
    max_inputs_per_request: int = Field(default=64, ge=1)
    # A torch or ONNX Runtime member whose largest batch takes less than this at warm-up
    # runs on the event loop: handing a call to a worker thread and back costs about
    # 0.2 ms on a small CPU, more than a tiny model's whole call. 0 keeps every member on
    # its workers; a python or triton member always is (its calls may stall on code or on
    # the network, and deadlines must fire).
    inline_below_ms: float = Field(default=1.0, ge=0)
    # Triton members (runtime: triton) call models on this server, host:port of its HTTP
    # endpoint. A call waits at most triton_timeout_s, or the member's deadline if shorter,
    # for each step (connecting, sending, each read); at start each model has
    # triton_startup_timeout_s to be ready.
    triton_url: str = "127.0.0.1:8000"
    triton_timeout_s: float = Field(default=10.0, gt=0)
    triton_startup_timeout_s: float = Field(default=60.0, gt=0)

    # Traces are exported as the standard OTEL_* variables say (OTEL_EXPORTER_OTLP_ENDPOINT,
    # OTEL_TRACES_EXPORTER, OTEL_TRACES_SAMPLER, ...), once this switch is on.
    tracing_enabled: bool = False
