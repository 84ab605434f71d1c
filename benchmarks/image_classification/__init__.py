"""Image classification: the service against the raw model, naive FastAPI, LitServe and
Triton, all serving one TorchScript ResNet-18 and all sent the same JPEGs.

Contenders (every one with the same intra-op thread count, `--threads`):
- ours: the rendered service, torch backend, micro-batching at its defaults;
- ours-ort: the service rendered with the onnxruntime backend, at its defaults, serving the
  same checkpoint exported to ONNX and passed through its int8 gate (`onnx_model.py`);
- ours-triton: the same service rendered with the triton backend, in front of a Triton
  server (PyTriton's bundled server) that runs the exported model with its dynamic batcher;
- triton-direct: a Triton server used directly: the JPEG bytes go in a BYTES tensor, and the
  model runs the service's preprocessing inside Triton's dynamic batch;
- naive-fastapi: FastAPI, one forward pass per request;
- litserve: LitServe with batching on.
The limit is the raw model in-process at its best batch size, for each runtime: torch, and
ONNX Runtime with the fp32 export and with the int8 model the gate published (if it did).
"""

from __future__ import annotations

import base64
import json
import os
import sys
import sysconfig
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from benchmarks.image_classification.payloads import jpeg_payloads
from benchmarks.loadgen import RequestSpec
from benchmarks.processes import ServerSpec, free_port, render_project, run_python
from benchmarks.suite import Contender, Figure, Outcome, Suite, Target

KIND = "image-classification"
ROOT = Path(__file__).resolve().parents[2]
TARGET_CONCURRENCY = 32
# Batching settings shared by every batching contender: the service's CPU defaults.
MAX_BATCH_SIZE = 8
MAX_WAIT_MS = 2.0
INFERENCE_WORKERS = 2


def build(workdir: Path, device: str, options: Mapping[str, Any]) -> Suite:
    """Renders the project, builds the model and payloads, and declares the contenders."""
    threads = int(options.get("threads", 1))
    litserve_workers = int(options.get("litserve_workers", 2))
    torch_device = "cuda" if device == "gpu" else "cpu"
    # The machine's limit: on CPU, one forward pass per core (each with `threads` threads),
    # as the service's inference workers and LitServe's per-core workers run; one on a GPU.
    parallel = 1 if device == "gpu" else max(1, len(os.sched_getaffinity(0)) // threads)

    renders = {
        "default": render_project(KIND, workdir / "render" / "default"),
        "triton": render_project(
            KIND, workdir / "render" / "triton", {"inference_backend": "triton"}
        ),
        "onnxruntime": render_project(
            KIND, workdir / "render" / "onnxruntime", {"inference_backend": "onnxruntime"}
        ),
    }
    model_dir = workdir / "model"
    run_python(
        "-c",
        "import sys; from pathlib import Path; "
        "from benchmarks.image_classification.model import build_checkpoint; "
        "build_checkpoint(Path(sys.argv[1]))",
        str(model_dir),
    )
    model_path = model_dir / "model.pt"
    repository = workdir / "triton-repository"
    run_python(
        "-m",
        "image_classification",
        "export-triton",
        "--repository",
        str(repository),
        "--max-batch-size",
        str(MAX_BATCH_SIZE),
        env={"PYTHONPATH": str(renders["triton"] / "src"), "APP_MODEL_PATH": str(model_path)},
    )
    triton_model = repository / "classifier"
    onnx_path = workdir / "onnx" / "model.onnx"
    onnx_path.parent.mkdir(parents=True, exist_ok=True)
    published = json.loads(
        run_python(
            "-m",
            "benchmarks.image_classification.onnx_model",
            "--checkpoint",
            str(model_path),
            "--output",
            str(onnx_path),
            "--batch-size",
            str(MAX_BATCH_SIZE),
            "--threads",
            str(threads),
            env={"PYTHONPATH": f"{ROOT}:{renders['onnxruntime'] / 'src'}"},
            timeout_s=900.0,
        )
        .strip()
        .splitlines()[-1]
    )
    print(f"ONNX model: {published}", flush=True)
    labels = (model_dir / "labels.txt").read_text().split()
    payloads = jpeg_payloads()
    json_requests = [_json_request(p) for p in payloads]
    common_env = {
        "OMP_NUM_THREADS": str(threads),
        "PYTHONUNBUFFERED": "1",
    }

    def peer_env(render: str) -> dict[str, str]:
        return {**common_env, "PYTHONPATH": f"{ROOT}:{renders[render] / 'src'}"}

    def service(name: str, render: str, port: int, extra: Mapping[str, str]) -> ServerSpec:
        env = {
            **peer_env(render),
            "APP_HOST": "127.0.0.1",
            "APP_PORT": str(port),
            "APP_MODEL_PATH": str(model_path),
            "APP_DEVICE": torch_device,
            "APP_TORCH_THREADS": str(threads),
            "APP_ONNX_THREADS": str(threads),
            "APP_LOG_LEVEL": "WARNING",
            **extra,
        }
        argv = [sys.executable, "-m", "image_classification", "serve"]
        return ServerSpec(name, argv, f"http://127.0.0.1:{port}/readyz", env, cwd=workdir)

    def triton(name: str, inputs: str, http_port: int) -> ServerSpec:
        libdir = sysconfig.get_config_var("LIBDIR")
        argv = [
            sys.executable,
            "-m",
            "benchmarks.image_classification.triton_server",
            "--model-dir",
            str(triton_model),
            "--inputs",
            inputs,
            "--http-port",
            str(http_port),
            "--grpc-port",
            str(free_port()),
            "--metrics-port",
            str(free_port()),
            "--threads",
            str(threads),
            "--device",
            torch_device,
        ]
        env = {**peer_env("triton"), "LD_LIBRARY_PATH": libdir}
        ready = f"http://127.0.0.1:{http_port}/v2/models/classifier/ready"
        return ServerSpec(name, argv, ready, env, cwd=workdir)

    ports = {
        name: free_port() for name in ("ours", "ours-ort", "ours-triton", "triton-t", "triton-j")
    }
    ports |= {"naive": free_port(), "litserve": free_port()}
    service_settings = {
        "APP_TORCH_THREADS": threads,
        "APP_MAX_BATCH_SIZE": f"{MAX_BATCH_SIZE} (default)",
        "APP_MAX_WAIT_MS": f"{MAX_WAIT_MS:g} (default)",
        "APP_INFERENCE_WORKERS": f"{INFERENCE_WORKERS} (default)",
        "APP_LOG_LEVEL": "WARNING",
    }
    contenders = [
        Contender(
            name="ours",
            description="the generated service, torch backend, micro-batching (defaults)",
            servers=[service("ours", "default", ports["ours"], {})],
            base_url=f"http://127.0.0.1:{ports['ours']}",
            requests=json_requests,
            top_label=_service_label,
            settings=service_settings,
        ),
        Contender(
            name="ours-ort",
            description="the generated service, onnxruntime backend (the gate's model), defaults",
            servers=[
                service(
                    "ours-ort", "onnxruntime", ports["ours-ort"], {"APP_MODEL_PATH": str(onnx_path)}
                )
            ],
            base_url=f"http://127.0.0.1:{ports['ours-ort']}",
            requests=json_requests,
            top_label=_service_label,
            # int8 keeps the labels and moves the probabilities by a few thousandths.
            score_tolerance=0.01 if published["published"] == "int8" else 1e-3,
            settings={
                **service_settings,
                "APP_ONNX_THREADS": threads,
                "model": f"model.onnx, published {published['published']} by the int8 gate "
                f"({published['reason']})",
            },
        ),
        Contender(
            name="naive-fastapi",
            description="FastAPI `def` endpoint, one forward pass per request",
            servers=[
                ServerSpec(
                    "naive-fastapi",
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.image_classification.naive_server",
                        "--model",
                        str(model_path),
                        "--port",
                        str(ports["naive"]),
                        "--threads",
                        str(threads),
                        "--device",
                        torch_device,
                    ],
                    f"http://127.0.0.1:{ports['naive']}/health",
                    peer_env("default"),
                    cwd=workdir,
                )
            ],
            base_url=f"http://127.0.0.1:{ports['naive']}",
            requests=json_requests,
            top_label=_service_label,
            settings={"torch threads": threads, "uvicorn workers": 1},
        ),
        Contender(
            name="litserve",
            description="LitServe 0.2.19, batching on, one worker per core",
            servers=[
                ServerSpec(
                    "litserve",
                    [
                        sys.executable,
                        "-m",
                        "benchmarks.image_classification.litserve_server",
                        "--model",
                        str(model_path),
                        "--port",
                        str(ports["litserve"]),
                        "--threads",
                        str(threads),
                        "--workers",
                        str(litserve_workers),
                        "--max-batch-size",
                        str(MAX_BATCH_SIZE),
                        "--batch-timeout",
                        str(MAX_WAIT_MS / 1000),
                        "--device",
                        torch_device,
                    ],
                    f"http://127.0.0.1:{ports['litserve']}/health",
                    peer_env("default"),
                    cwd=workdir,
                )
            ],
            base_url=f"http://127.0.0.1:{ports['litserve']}",
            requests=json_requests,
            top_label=_service_label,
            settings={
                "workers_per_device": litserve_workers,
                "max_batch_size": MAX_BATCH_SIZE,
                "batch_timeout": MAX_WAIT_MS / 1000,
                "torch threads per worker": threads,
            },
        ),
        Contender(
            name="ours-triton",
            description="the generated service, triton backend, in front of Triton",
            servers=[
                triton("triton-tensors", "tensors", ports["triton-t"]),
                service(
                    "ours-triton",
                    "triton",
                    ports["ours-triton"],
                    {
                        "APP_INFERENCE_BACKEND": "triton",
                        "APP_TRITON_URL": f"127.0.0.1:{ports['triton-t']}",
                        "APP_TRITON_METADATA_PATH": str(triton_model / "metadata.json"),
                    },
                ),
            ],
            base_url=f"http://127.0.0.1:{ports['ours-triton']}",
            requests=json_requests,
            top_label=_service_label,
            settings={
                **service_settings,
                "APP_TRITON_CONCURRENT_BATCHES": "4 (default)",
                "triton": f"dynamic batcher, max_batch_size {MAX_BATCH_SIZE}, "
                f"max_queue_delay {int(MAX_WAIT_MS * 1000)} us (export-triton's config)",
            },
        ),
        Contender(
            name="triton-direct",
            description="Triton used directly: JPEG bytes in, preprocessing inside the batch",
            servers=[triton("triton-jpeg", "jpeg", ports["triton-j"])],
            base_url=f"http://127.0.0.1:{ports['triton-j']}",
            requests=[_triton_request(p) for p in payloads],
            top_label=lambda response: _triton_label(response, labels),
            settings={
                "triton": f"dynamic batcher, max_batch_size {MAX_BATCH_SIZE}, "
                f"max_queue_delay {int(MAX_WAIT_MS * 1000)} us",
                "protocol": "KServe v2 HTTP, binary tensor extension",
            },
        ),
    ]
    # Not in the default run: the service with settings a user may choose, to measure
    # what they buy in the same interleaved run (--contenders ours,ours-workers1,...).
    variants = {
        "ours-workers1": {"APP_INFERENCE_WORKERS": "1"},
        "ours-threads2-workers1": {"APP_TORCH_THREADS": "2", "APP_INFERENCE_WORKERS": "1"},
        "ours-batch32": {"APP_MAX_BATCH_SIZE": "32"},
        "ours-wait0": {"APP_MAX_WAIT_MS": "0"},
    }
    wanted = options.get("contenders")
    for name, overrides in variants.items():
        if wanted and name in wanted:
            port = free_port()
            contenders.append(
                Contender(
                    name=name,
                    description=f"the generated service, torch backend, with {overrides}",
                    servers=[service(name, "default", port, overrides)],
                    base_url=f"http://127.0.0.1:{port}",
                    requests=json_requests,
                    top_label=_service_label,
                    settings={**service_settings, **overrides},
                )
            )
    if wanted:
        contenders = [c for c in contenders if c.name in wanted]

    def limit_of(runtime: str, model: Path) -> dict[str, Any]:
        output = run_python(
            "-m",
            "benchmarks.image_classification.limit",
            "--runtime",
            runtime,
            "--model",
            str(model),
            "--threads",
            str(threads),
            "--parallel",
            str(parallel),
            "--device",
            torch_device,
            env=common_env,
        )
        return json.loads(output.strip().splitlines()[-1])

    onnx_models = {"onnxruntime-fp32": onnx_path.with_name("model.fp32.onnx")}
    int8 = onnx_path.with_name("model.int8.onnx")
    if int8.is_file():
        onnx_models["onnxruntime-int8"] = int8

    def limit() -> dict[str, Any]:
        """torch's limit, with every runtime's beside it (the service's model among them)."""
        runtimes = {"torch": limit_of("torch", model_path)}
        for name, path in onnx_models.items():
            runtimes[name] = limit_of("onnxruntime", path)
        return {**runtimes["torch"], "runtimes": runtimes}

    return Suite(
        kind=KIND,
        contenders=contenders,
        targets=_targets(published["published"]),
        figures=[
            Figure("throughput_rps", "Throughput", "images/s"),
            Figure("p99_ms", "p99 latency", "ms", log_y=True),
        ],
        throughput_unit="images/s",
        limit=limit,
        limit_description="the TorchScript model in-process on random tensors, no HTTP and "
        f"no decoding, {parallel} forward pass(es) at once (one per core), at its best batch "
        "size of 1, 4, 8, 16 and 32; the same for the ONNX models in one ONNX Runtime session",
        notes=[
            "ONNX model (ours-ort): the checkpoint exported by the service's export_onnx (max "
            f"difference of probabilities against torch {published['max_abs_difference']:.1e}), "
            f"then its int8 gate at batch {MAX_BATCH_SIZE}: published {published['published']}; "
            f"{published['reason']}.",
            "Model: ResNet-18 in plain torch (11.7 M parameters, about 1.8 GFLOPs at 224x224), "
            "random seeded weights, traced to TorchScript with the metadata.json extra file.",
            "Payloads: 16 JPEGs (320x240 to 640x427, 17-100 kB) cut from scikit-learn's sample "
            "photos; one image per request; client i starts at payload i.",
            f"Every contender runs its runtime with {threads} intra-op thread(s) "
            f"(OMP_NUM_THREADS={threads}) and logs at WARNING (no per-request log lines).",
        ],
        settings={
            "threads": threads,
            "litserve_workers": litserve_workers,
            "max_batch_size": MAX_BATCH_SIZE,
            "max_wait_ms": MAX_WAIT_MS,
            "payloads": len(payloads),
            "payload_bytes": [len(p) for p in payloads],
        },
    )


def _json_request(payload: bytes) -> RequestSpec:
    body = json.dumps({"images": [base64.b64encode(payload).decode()]}).encode()
    return RequestSpec("/v1/classify", body, {"content-type": "application/json"})


def _service_label(response: httpx.Response) -> tuple[str, float]:
    best = response.json()["predictions"][0]["labels"][0]
    return str(best["label"]), round(float(best["score"]), 4)


def _triton_request(payload: bytes) -> RequestSpec:
    """KServe v2 with Triton's binary tensor extension: a JSON header, then raw bytes."""
    data = len(payload).to_bytes(4, "little") + payload
    header = json.dumps(
        {
            "inputs": [
                {
                    "name": "IMAGE",
                    "shape": [1, 1],
                    "datatype": "BYTES",
                    "parameters": {"binary_data_size": len(data)},
                }
            ],
            "outputs": [{"name": "OUTPUT__0", "parameters": {"binary_data": True}}],
        }
    ).encode()
    return RequestSpec(
        "/v2/models/classifier/infer",
        header + data,
        {
            "content-type": "application/octet-stream",
            "inference-header-content-length": str(len(header)),
        },
    )


def _triton_label(response: httpx.Response, labels: list[str]) -> tuple[str, float]:
    """Triton answers logits (what the model returns); the client takes the softmax."""
    import numpy as np

    length = int(response.headers.get("inference-header-content-length", len(response.content)))
    logits = np.frombuffer(response.content[length:], dtype=np.float32).astype(np.float64)
    best = int(np.argmax(logits))
    probabilities = np.exp(logits - logits[best])
    return labels[best], round(float(1.0 / probabilities.sum()), 4)


def _ratio(results: Mapping[str, Any], a: str, b: str, metric: str, c: int) -> float | None:
    summary = results["summary"]
    try:
        top = summary[a][str(c)][metric]["median"]
        bottom = summary[b][str(c)][metric]["median"]
    except KeyError:
        return None
    return top / bottom if bottom else None


def _figure(results: Mapping[str, Any], name: str, metric: str, c: int, unit: str) -> str:
    try:
        cell = results["summary"][name][str(c)][metric]
    except KeyError:
        return f"{name}: not measured"
    return f"{name} {cell['median']:.1f} ({cell['min']:.1f}-{cell['max']:.1f}) {unit}"


def _limit_at(results: Mapping[str, Any], runtime: str, batch: int | None = None) -> float | None:
    """A runtime's limit in images/s: at its best batch size, or at `batch`."""
    limit = (results.get("limits") or {}).get(runtime)
    if not limit:
        return None
    cell = limit["per_second"] if batch is None else limit["by_batch_size"].get(str(batch))
    return cell["median"] if cell else None


def _targets(published: str) -> list[Target]:
    c = TARGET_CONCURRENCY
    served = f"onnxruntime-{published}"

    def ort_versus_naive(results: Mapping[str, Any]) -> Outcome:
        ratio = _ratio(results, "ours-ort", "naive-fastapi", "throughput_rps", c)
        p99 = _ratio(results, "ours-ort", "naive-fastapi", "p99_ms", c)
        if ratio is None or p99 is None:
            return Outcome(None, "not measured")
        text = (
            f"{ratio:.2f}x: {_figure(results, 'ours-ort', 'throughput_rps', c, 'img/s')} vs "
            f"{_figure(results, 'naive-fastapi', 'throughput_rps', c, 'img/s')}; p99 "
            f"{_figure(results, 'ours-ort', 'p99_ms', c, 'ms')} vs "
            f"{_figure(results, 'naive-fastapi', 'p99_ms', c, 'ms')}"
        )
        return Outcome(ratio >= 2.0 and p99 <= 1.0, text)

    def ort_versus_limit(results: Mapping[str, Any]) -> Outcome:
        limit = _limit_at(results, served)
        try:
            ours = results["summary"]["ours-ort"][str(c)]["throughput_rps"]["median"]
        except KeyError:
            return Outcome(None, "not measured")
        if not limit:
            return Outcome(None, "limit not measured")
        best = results["limits"][served]["best_batch_size"]
        text = (
            f"{ours / limit:.0%}: {_figure(results, 'ours-ort', 'throughput_rps', c, 'img/s')} "
            f"vs {served} limit {limit:.1f} img/s at batch {best}"
        )
        return Outcome(ours / limit >= 0.85, text)

    def ort_lone_client(results: Mapping[str, Any]) -> Outcome:
        try:
            ours = results["summary"]["ours-ort"]["1"]["p50_ms"]["median"]
            naive = results["summary"]["naive-fastapi"]["1"]["p50_ms"]["median"]
        except KeyError:
            return Outcome(None, "not measured")
        text = (
            f"{ours - naive:+.1f} ms: {_figure(results, 'ours-ort', 'p50_ms', 1, 'ms')} vs "
            f"{_figure(results, 'naive-fastapi', 'p50_ms', 1, 'ms')}"
        )
        return Outcome(ours <= naive, text)

    def int8_versus_fp32(results: Mapping[str, Any]) -> Outcome:
        int8 = _limit_at(results, "onnxruntime-int8", MAX_BATCH_SIZE)
        fp32 = _limit_at(results, "onnxruntime-fp32", MAX_BATCH_SIZE)
        if not int8 or not fp32:
            return Outcome(None, "no int8 model kept its accuracy; the gate published fp32")
        text = (
            f"{int8 / fp32:.2f}x at batch {MAX_BATCH_SIZE}: int8 {int8:.1f} vs fp32 "
            f"{fp32:.1f} img/s (model alone); the gate published {published}"
        )
        return Outcome(int8 / fp32 >= 1.3, text)

    def versus_naive(results: Mapping[str, Any]) -> Outcome:
        ratio = _ratio(results, "ours", "naive-fastapi", "throughput_rps", c)
        if ratio is None:
            return Outcome(None, "not measured")
        text = (
            f"{ratio:.2f}x: {_figure(results, 'ours', 'throughput_rps', c, 'img/s')} vs "
            f"{_figure(results, 'naive-fastapi', 'throughput_rps', c, 'img/s')}"
        )
        return Outcome(ratio >= 2.0, text)

    def versus_litserve_throughput(results: Mapping[str, Any]) -> Outcome:
        ratio = _ratio(results, "ours", "litserve", "throughput_rps", c)
        if ratio is None:
            return Outcome(None, "not measured")
        text = (
            f"{ratio:.2f}x: {_figure(results, 'ours', 'throughput_rps', c, 'img/s')} vs "
            f"{_figure(results, 'litserve', 'throughput_rps', c, 'img/s')}"
        )
        return Outcome(ratio >= 1.0, text)

    def versus_litserve_p99(results: Mapping[str, Any]) -> Outcome:
        ratio = _ratio(results, "ours", "litserve", "p99_ms", c)
        if ratio is None:
            return Outcome(None, "not measured")
        text = (
            f"{ratio:.2f}x: {_figure(results, 'ours', 'p99_ms', c, 'ms')} vs "
            f"{_figure(results, 'litserve', 'p99_ms', c, 'ms')}"
        )
        return Outcome(ratio <= 1.5, text)

    def versus_limit(results: Mapping[str, Any]) -> Outcome:
        limit = results.get("limit")
        try:
            ours = results["summary"]["ours"][str(c)]["throughput_rps"]["median"]
        except KeyError:
            return Outcome(None, "not measured")
        if not limit:
            return Outcome(None, "limit not measured")
        share = ours / limit["per_second"]["median"]
        text = (
            f"{share:.0%}: {_figure(results, 'ours', 'throughput_rps', c, 'img/s')} vs limit "
            f"{limit['per_second']['median']:.1f} ({limit['per_second']['min']:.1f}-"
            f"{limit['per_second']['max']:.1f}) img/s at batch {limit['best_batch_size']}"
        )
        return Outcome(share >= 0.6, text)

    def lone_client(results: Mapping[str, Any]) -> Outcome:
        try:
            ours = results["summary"]["ours"]["1"]["p50_ms"]["median"]
            naive = results["summary"]["naive-fastapi"]["1"]["p50_ms"]["median"]
        except KeyError:
            return Outcome(None, "not measured")
        text = (
            f"{ours - naive:+.1f} ms: {_figure(results, 'ours', 'p50_ms', 1, 'ms')} vs "
            f"{_figure(results, 'naive-fastapi', 'p50_ms', 1, 'ms')}"
        )
        return Outcome(ours <= naive + 2.0, text)

    return [
        Target(f"ours-ort >= 2x naive FastAPI, p99 <= naive's (c={c})", ort_versus_naive),
        Target(f"ours-ort >= 85% of its ONNX Runtime limit (c={c})", ort_versus_limit),
        Target("ours-ort p50 <= naive FastAPI p50 (c=1)", ort_lone_client),
        Target(f"int8 >= 1.3x fp32 ONNX Runtime (batch {MAX_BATCH_SIZE})", int8_versus_fp32),
        Target(f"ours >= 2x naive FastAPI throughput (c={c})", versus_naive),
        Target(f"ours >= 1.0x LitServe throughput (c={c})", versus_litserve_throughput),
        Target(f"ours p99 <= 1.5x LitServe p99 (c={c})", versus_litserve_p99),
        Target(f"ours >= 60% of the raw limit (c={c})", versus_limit),
        Target("ours p50 <= naive FastAPI p50 + 2 ms (c=1)", lone_client),
    ]
