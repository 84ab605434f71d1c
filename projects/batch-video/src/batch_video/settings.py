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

    service_name: str = "batch-video"
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

    # The frame classifier: a model folder with model.json (train-demo writes one), run on
    # ONNX Runtime (no torch needed to serve) or torch.
    model_dir: Path = Path("models/demo")
    runtime: Literal["torch", "onnxruntime"] = "onnxruntime"
    # Where jobs keep their spec, committed results and progress; a restarted service takes
    # up the unfinished ones from here.
    jobs_dir: Path = Path("jobs")
    # Folders videos may come from, comma-separated; a path outside them (links resolved)
    # is refused with 403.
    video_roots: str = "videos"
    # Where videos are analysed: local worker processes (one per core when `workers` is
    # unset), or Ray actors (`ray`: pip install ray) on the Ray at ray_address (empty: a
    # local Ray), each asking for ray_num_cpus (fractional, so actors and Ray's own work
    # share small machines) and ray_num_gpus.
    engine: Literal["local", "ray"] = "local"
    workers: int | None = Field(default=None, ge=1)
    ray_address: str = ""
    ray_num_cpus: float = Field(default=0.5, gt=0)
    ray_num_gpus: float = Field(default=0.0, ge=0)
    max_running_jobs: int = Field(default=2, ge=1)
    max_queued_jobs: int = Field(default=16, ge=1)  # queued or running; more get 429
    max_videos_per_job: int = Field(default=1000, ge=1)
    # Frames per model call, and frames the decoder may run ahead of the model.
    batch_size: int = Field(default=32, ge=1)
    decode_ahead: int = Field(default=64, ge=1)
    decode_threads: int = Field(default=1, ge=1)
    top_k: int = Field(default=3, ge=1)
    # POST /v1/analyse answers inline for videos up to this long, so many at once.
    max_inline_video_s: float = Field(default=60.0, gt=0)
    max_concurrent_analyses: int = Field(default=2, ge=1)

    # Traces are exported as the standard OTEL_* variables say (OTEL_EXPORTER_OTLP_ENDPOINT,
    # OTEL_TRACES_EXPORTER, OTEL_TRACES_SAMPLER, ...), once this switch is on.
    tracing_enabled: bool = False

    @property
    def video_root_paths(self) -> list[Path]:
        return [
            Path(root).expanduser().resolve()
            for root in self.video_roots.split(",")
            if root.strip()
        ]
