"""The embedder on ONNX Runtime: exported and gated by the project's own `export-embedder`,
its model alone at its best batch size (the limit), and a FLOP-bound estimate of what this
CPU could do at most.

The limit runs the session on batches tokenised ahead of time, sorted by length as the
Embedder sorts them, at batch sizes 8-64; what the Embedder adds on top is tokenising,
its lock and its metrics. The FLOP bound counts the encoder's multiply-adds per chunk
(every linear layer, and attention's two T x T products) at the chunks' mean length, against
the float32 matrix-multiply rate this machine reaches in torch on the same threads.
"""

from __future__ import annotations

import shutil
import statistics
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BATCH_SIZES = (8, 16, 32, 64)
REPETITIONS = 2


def export(render: Path, folder: Path) -> dict[str, Any]:
    """Runs the project's export-embedder into `folder`; the ONNX folders to measure (fp32,
    and int8 where the gate found a candidate within its recall bound) and the gate."""
    from rag_qa.embedder_export import export_embedder
    from rag_qa.evaluation import load_questions
    from rag_qa.settings import Settings

    started = time.perf_counter()
    published = export_embedder(
        Settings(device="cpu"),
        folder,
        corpus=render / "eval" / "corpus",
        questions=load_questions(render / "eval" / "qa.jsonl"),
    )
    folders = {"ort-fp32": _folder(folder, "model.fp32.onnx")}
    if (folder / "model.int8.onnx").is_file():
        folders["ort-int8"] = _folder(folder, "model.int8.onnx")
    gate = published.gate
    return {
        "folders": folders,
        "published": gate.published,
        "seconds": time.perf_counter() - started,
        "max_abs_difference": published.export.max_abs_difference,
        "gate": {
            "published": gate.published,
            "reason": gate.reason,
            "batch_size": gate.batch_size,
            "threads": gate.threads,
            "fp32_recall": gate.fp32_quality,
            "fp32_chunks_per_s": gate.fp32_items_per_s,
            "candidates": [
                {
                    "name": c.name,
                    "recall": c.quality,
                    "chunks_per_s": c.items_per_s,
                }
                for c in gate.candidates
            ],
            "speedup": gate.speedup,
            "recall_loss": gate.loss,
            "cpu_flags": gate.cpu_flags,
        },
    }


def _folder(export_folder: Path, model: str) -> Path:
    """A folder the service can load: `model` as model.onnx, beside the tokenizer."""
    target = export_folder / model.removesuffix(".onnx").replace(".", "-")
    target.mkdir(exist_ok=True)
    for path in export_folder.iterdir():
        if path.is_file() and not path.name.startswith("model") and path.name != "gate.json":
            shutil.copyfile(path, target / path.name)
    shutil.copyfile(export_folder / model, target / "model.onnx")
    return target


def limit(loaded: Any, texts: Sequence[str]) -> dict[str, Any]:
    """The session alone on pre-tokenised, length-sorted batches: chunks/s per batch size
    (best of REPETITIONS), and the best."""
    encoder = loaded.encoder
    ordered = sorted(texts, key=len)
    rates: dict[int, float] = {}
    for size in BATCH_SIZES:
        batches = [encoder.feeds(ordered[i : i + size]) for i in range(0, len(ordered), size)]
        encoder.model.run_feeds(batches[0])
        best = 0.0
        for _ in range(REPETITIONS):
            started = time.perf_counter()
            for feeds in batches:
                encoder.model.run_feeds(feeds)
            best = max(best, len(texts) / (time.perf_counter() - started))
        rates[size] = best
        print(f"  limit batch {size}: {best:.1f} chunks/s", flush=True)
    best_size = max(rates, key=lambda s: rates[s])
    return {
        "chunks_per_s_by_batch": {str(s): r for s, r in rates.items()},
        "best_batch": best_size,
        "chunks_per_s": rates[best_size],
    }


def flop_bound(model: Any, tokens_mean: float, threads: int) -> dict[str, Any]:
    """Multiply-adds per chunk of the encoder (a SentenceTransformer), and chunks/s at the
    float32 GEMM rate this machine reaches (torch on `threads` threads)."""
    import torch

    linear = sum(
        m.in_features * m.out_features for m in model.modules() if isinstance(m, torch.nn.Linear)
    )
    config = model[0].auto_model.config
    layers, hidden = config.num_hidden_layers, config.hidden_size
    # Per token: every linear layer once; attention: Q.K^T and A.V, T x hidden each.
    flops_per_token = 2 * linear + 2 * 2 * layers * hidden * tokens_mean
    flops_per_chunk = flops_per_token * tokens_mean
    size = 1024
    a = torch.randn(size, size)
    torch.set_num_threads(threads)
    runs = []
    for _ in range(6):
        started = time.perf_counter()
        torch.mm(a, a)
        runs.append(2 * size**3 / (time.perf_counter() - started))
    gemm = statistics.median(runs[1:])
    return {
        "linear_weights": linear,
        "layers": layers,
        "hidden": hidden,
        "tokens_mean": tokens_mean,
        "gflop_per_chunk": flops_per_chunk / 1e9,
        "gemm_gflop_per_s": gemm / 1e9,
        "threads": threads,
        "chunks_per_s": gemm / flops_per_chunk,
    }
