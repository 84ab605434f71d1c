"""RAG Q&A: retrieval latency and recall of the project's vector store against exact
search, and ingestion throughput of its embedder, measured in process (no HTTP).

Retrieval, at 10k and 100k chunks, 1,000 queries one at a time (50 warm-up queries not
counted): the project's LanceStore filled through `add_document` as the service fills it
(below `ann_index_min_rows`, 20k by default, it has no index and scans exactly; above, the
IVF_HNSW_SQ index the store builds itself), searched through `LanceStore.search`, against
brute force in numpy (the unit float32 matrix @ the query, argpartition: the limit).
Recall@10 is against that exact top 10 for the same queries. Then, at 100k, other index
parameters on the same table (retrieval.py). The vectors are real embeddings of standard
library docstring paragraphs, grown to 100k by mixing pairs of real ones; the queries are
held-out real paragraphs (corpus.py has the method).

Embedding: the project's `export-embedder` exports the model to ONNX and gates int8 on
the project's QA set (onnx_embedder.py); then the project's Embedder at batch size 32 on
~128-token chunks made by its own Chunker, on torch (float32, and eager int8:
`APP_EMBEDDING_INT8`) and on ONNX Runtime (`APP_EMBEDDING_RUNTIME=onnxruntime`, fp32 and
the gate's int8), 3 repetitions interleaved; beside each ONNX model alone at its best batch
size (the limit) and a FLOP-bound estimate; and every file of the template's evaluation
corpus through its Ingestor (parse, chunk, embed, store) with each embedder.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from benchmarks.processes import render_project
from benchmarks.suite import Outcome, Suite, Target

KIND = "rag-qa"
SIZES = (10_000, 100_000)
# The targets.
P95_MS = 30.0
RECALL = 0.95
CHUNKS_PER_S = 200.0
OF_LIMIT = 0.90  # the Embedder against its model alone
OF_EMBEDDER = 0.85  # ingestion end to end against the Embedder


def build(workdir: Path, device: str, options: Mapping[str, Any]) -> Suite:
    if device != "cpu":
        raise SystemExit("the rag-qa suite runs on CPU only for now")
    render = render_project(KIND, workdir / "render")
    sys.path.insert(0, str(render / "src"))
    return Suite(
        kind=KIND,
        contenders=[],
        targets=[
            Target(
                f"LanceStore p95 <= {P95_MS:g} ms at 100k chunks with recall@10 >= {RECALL}",
                _retrieval_target,
            ),
            Target(
                f"embedding >= {CHUNKS_PER_S:g} chunks/s on 2 cores (the fastest embedder)",
                _throughput_target,
            ),
            Target(
                f"ONNX Runtime Embedder >= {OF_LIMIT:.0%} of its model alone (the published model)",
                _limit_target,
            ),
            Target(
                f"ingestion end to end >= {OF_EMBEDDER:.0%} of the Embedder's rate "
                "(ONNX Runtime, the published model)",
                _ingestion_target,
            ),
        ],
        figures=[],
        throughput_unit="",
        measure=lambda: measure(workdir, render),
        settings={"sizes": list(SIZES), "queries": 1_000, "k": 10},
    )


def measure(workdir: Path, render: Path) -> dict[str, Any]:
    from benchmarks.rag_qa import corpus, ingestion, onnx_embedder, retrieval

    print("exporting the embedder to ONNX, int8 through the gate (export-embedder)", flush=True)
    exported = onnx_embedder.export(render, workdir / "embedder")
    print(f"  {exported['gate']['reason']}", flush=True)
    print("loading the embedders", flush=True)
    embedders = {
        "torch-int8": ingestion.embedder(True),
        "torch-fp32": ingestion.embedder(False),
        **{
            name: ingestion.embedder(
                False, embedding_runtime="onnxruntime", embedding_model_path=folder
            )
            for name, folder in exported["folders"].items()
        },
    }
    published = f"ort-{exported['published']}"
    key = ingestion.embedder_key(embedders["torch-int8"])
    real = corpus.load(embedders["torch-int8"].embed, key)
    print(f"{len(real.texts)} real chunks, {len(real.queries)} queries", flush=True)

    print("embedding throughput", flush=True)
    texts = ingestion.chunk_texts(real.texts, embedders["torch-int8"])
    embedding = ingestion.embedding_throughput(embedders, texts)
    limits = {}
    for name in exported["folders"]:
        print(f"model alone ({name})", flush=True)
        limits[name] = onnx_embedder.limit(embedders[name], texts)
    bound = onnx_embedder.flop_bound(
        embedders["torch-fp32"].encoder.model,
        embedding["tokens_mean"],
        embedders["torch-fp32"].settings.embedding_threads,
    )
    end_to_end = {}
    for name, loaded in embedders.items():
        print(f"ingesting the evaluation corpus ({name})", flush=True)
        end_to_end[name] = ingestion.end_to_end(
            loaded, render / "eval" / "corpus", workdir / f"ingest-{name}"
        )
    del embedders

    retrieval_rows: dict[str, Any] = {}
    sweep: list[dict[str, Any]] = []
    vectors, parents = corpus.grow(real.vectors, max(SIZES))
    for size in SIZES:
        print(f"retrieval at {size} chunks: filling the store", flush=True)
        store, fill_s = retrieval.fill_store(
            Path(tempfile.mkdtemp(dir=workdir)), vectors[:size], real.texts, parents[:size]
        )
        exact = retrieval.timed(retrieval.exact_search(vectors[:size]), real.query_vectors)
        lance = retrieval.timed(retrieval.store_search(store), real.query_vectors)
        retrieval_rows[str(size)] = {
            "fill_s": fill_s,
            "fill_chunks_per_s": size / fill_s,
            **retrieval.indexed(store),
            "numpy_exact": exact.summary(),
            "lance_store": lance.summary(exact.found),
        }
        print(f"  {retrieval_rows[str(size)]}", flush=True)
        if size == max(SIZES):
            sweep = retrieval.sweep(store, vectors.shape[1], real.query_vectors, exact.found)
    measured = {
        "corpus": {
            "real_chunks": len(real.texts),
            "queries": len(real.queries),
            "embed_s_first_run": real.embed_seconds,
            "mix": corpus.MIX,
        },
        "embedding": embedding,
        "onnx": {key: value for key, value in exported.items() if key != "folders"},
        "published": published,
        "embedder_limits": limits,
        "flop_bound": bound,
        "end_to_end": end_to_end,
        "retrieval": retrieval_rows,
        "index_sweep": sweep,
    }
    return {**measured, "tables": tables(measured)}


def tables(measured: Mapping[str, Any]) -> list[dict[str, Any]]:
    retrieval_rows = []
    for size, row in measured["retrieval"].items():
        index = row.get("index") or "none (flat scan, below ann_index_min_rows)"
        for name, label in (("lance_store", f"LanceStore, index {index}"), ("numpy_exact", "")):
            cell = row[name]
            retrieval_rows.append(
                [
                    f"{int(size):,}",
                    label or "numpy exact (the limit)",
                    f"{cell['p50_ms']:.1f}",
                    f"{cell['p95_ms']:.1f}",
                    f"{cell['p99_ms']:.1f}",
                    f"{cell['recall_at_10']:.4f}" if "recall_at_10" in cell else "1 (exact)",
                ]
            )
    fills = [
        [f"{int(size):,}", f"{row['fill_s']:.1f}", f"{row['fill_chunks_per_s']:.0f}"]
        for size, row in measured["retrieval"].items()
    ]
    embedding = measured["embedding"]
    embedding_rows = [
        [
            name,
            _spread(cell),
            f"{embedding['chunks']} chunks, mean {embedding['tokens_mean']:.0f} tokens, "
            f"batch {embedding['batch_size']}",
        ]
        for name, cell in embedding["chunks_per_s"].items()
    ]
    limits = measured.get("embedder_limits", {})
    rates = embedding["chunks_per_s"]
    limit_rows = [
        [
            name,
            f"{cell['chunks_per_s']:.1f}",
            str(cell["best_batch"]),
            ", ".join(f"{b}: {r:.0f}" for b, r in cell["chunks_per_s_by_batch"].items()),
            f"{rates[name]['median'] / cell['chunks_per_s']:.0%}" if name in rates else "-",
        ]
        for name, cell in limits.items()
    ]
    bound = measured.get("flop_bound")
    if bound:
        limit_rows.append(
            [
                "FLOP bound (fp32)",
                f"{bound['chunks_per_s']:.1f}",
                "-",
                f"{bound['gflop_per_chunk']:.2f} GFLOP a chunk at {bound['tokens_mean']:.0f} "
                f"tokens, GEMM {bound['gemm_gflop_per_s']:.0f} GFLOP/s on "
                f"{bound['threads']} threads",
                "-",
            ]
        )
    gate = measured.get("onnx", {}).get("gate")
    gate_rows = []
    if gate:
        gate_rows = [["fp32", f"{gate['fp32_recall']:.4f}", f"{gate['fp32_chunks_per_s']:.1f}"]]
        gate_rows += [
            [c["name"], f"{c['recall']:.4f}", f"{c['chunks_per_s']:.1f}"]
            for c in gate["candidates"]
        ]
    end_to_end_rows = [
        [
            name,
            str(row["documents"]),
            str(row["chunks"]),
            f"{row['seconds']:.1f}",
            f"{row['chunks_per_s']:.1f}",
        ]
        for name, row in measured["end_to_end"].items()
    ]
    sweep_rows = [
        [
            row["index"],
            f"{row['build_s']:.1f}" if row["build_s"] else "-",
            str(row["nprobes"] if row["nprobes"] is not None else "-"),
            str(row["refine_factor"] if row["refine_factor"] is not None else "-"),
            f"{row['p50_ms']:.1f}",
            f"{row['p95_ms']:.1f}",
            f"{row['p99_ms']:.1f}",
            f"{row['recall_at_10']:.4f}",
        ]
        for row in measured["index_sweep"]
    ]
    return [
        {
            "title": "Retrieval, one query at a time, top 10 (ms)",
            "columns": ["chunks", "search", "p50", "p95", "p99", "recall@10"],
            "rows": retrieval_rows,
        },
        {
            "title": "Filling the store through LanceStore.add_document (500 chunks a call)",
            "columns": ["chunks", "seconds", "chunks/s"],
            "rows": fills,
        },
        {
            "title": "Embedding throughput (chunks/s, median and min-max of 3)",
            "columns": ["embedder", "chunks/s", "work"],
            "rows": embedding_rows,
        },
        {
            "title": "Each ONNX model alone (the limit, pre-tokenised batches), chunks/s",
            "columns": ["model", "best", "batch", "by batch size", "Embedder / limit"],
            "rows": limit_rows,
        },
        {
            "title": "The int8 gate (export-embedder): recall@5 on the QA set, chunks/s at "
            f"batch {gate['batch_size'] if gate else '-'}; "
            f"published {gate['published'] if gate else '-'}",
            "columns": ["model", "recall@5", "chunks/s"],
            "rows": gate_rows,
        },
        {
            "title": "Ingestion end to end: the evaluation corpus through Ingestor.ingest",
            "columns": ["embedder", "documents", "chunks", "seconds", "chunks/s"],
            "rows": end_to_end_rows,
        },
        {
            "title": "LanceDB index parameters at 100k chunks (LanceStore.search, ms)",
            "columns": [
                "index",
                "build s",
                "nprobes",
                "refine",
                "p50",
                "p95",
                "p99",
                "recall@10",
            ],
            "rows": sweep_rows,
        },
    ]


def _spread(cell: Mapping[str, float]) -> str:
    return f"{cell['median']:.1f} ({cell['min']:.1f}-{cell['max']:.1f})"


def _retrieval_target(results: Mapping[str, Any]) -> Outcome:
    row = results.get("retrieval", {}).get(str(max(SIZES)))
    if row is None:
        return Outcome(None, "not measured")
    cell = row["lance_store"]
    return Outcome(
        cell["p95_ms"] <= P95_MS and cell["recall_at_10"] >= RECALL,
        f"p95 {cell['p95_ms']:.1f} ms, recall@10 {cell['recall_at_10']:.4f} "
        f"(numpy exact p95 {row['numpy_exact']['p95_ms']:.1f} ms)",
    )


def _throughput_target(results: Mapping[str, Any]) -> Outcome:
    rates = results.get("embedding", {}).get("chunks_per_s", {})
    if not rates:
        return Outcome(None, "not measured")
    best = max(rates, key=lambda n: rates[n]["median"])
    others = ", ".join(f"{n} {_spread(c)}" for n, c in rates.items() if n != best)
    bound = results.get("flop_bound", {}).get("chunks_per_s")
    bounded = f"; fp32 FLOP bound {bound:.0f}" if bound else ""
    return Outcome(
        rates[best]["median"] >= CHUNKS_PER_S,
        f"{best} {_spread(rates[best])} chunks/s ({others}{bounded})",
    )


def _limit_target(results: Mapping[str, Any]) -> Outcome:
    name = results.get("published")
    limit = results.get("embedder_limits", {}).get(name)
    rate = results.get("embedding", {}).get("chunks_per_s", {}).get(name)
    if not limit or not rate:
        return Outcome(None, "not measured")
    share = rate["median"] / limit["chunks_per_s"]
    return Outcome(
        share >= OF_LIMIT,
        f"{name}: Embedder {rate['median']:.1f} of {limit['chunks_per_s']:.1f} chunks/s alone "
        f"(batch {limit['best_batch']}), {share:.0%}",
    )


def _ingestion_target(results: Mapping[str, Any]) -> Outcome:
    name = results.get("published")
    row = results.get("end_to_end", {}).get(name)
    rate = results.get("embedding", {}).get("chunks_per_s", {}).get(name)
    if row is None or rate is None:
        return Outcome(None, "not measured")
    share = row["chunks_per_s"] / rate["median"]
    return Outcome(
        share >= OF_EMBEDDER,
        f"{name}: {row['chunks_per_s']:.1f} chunks/s ({row['chunks']} chunks in "
        f"{row['seconds']:.1f} s), {share:.0%} of the Embedder's {rate['median']:.1f}",
    )
