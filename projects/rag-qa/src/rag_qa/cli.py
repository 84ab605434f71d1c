"""Command line: `python -m rag_qa serve | prepare-model | ingest | ask | eval |
export-embedder | demo`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import httpx

from rag_qa import commands
from rag_qa.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rag_qa", description=__doc__)
    subcommands = parser.add_subparsers(dest="command", required=True)

    commands.add_serve(subcommands)
    commands.add_prepare_model(subcommands)

    ingest = subcommands.add_parser("ingest", help="ingest every supported file in a folder")
    ingest.add_argument("folder", type=Path)
    ingest.add_argument(
        "--url", help="upload to a running service instead of writing the store directly"
    )
    ingest.add_argument("--api-key", help="X-API-Key header, with --url")

    ask = subcommands.add_parser("ask", help="ask a running service; the answer streams")
    ask.add_argument("question")
    ask.add_argument("--url", default="http://127.0.0.1:8000")
    ask.add_argument("--api-key", help="X-API-Key header, when the service asks for one")

    evaluate = subcommands.add_parser(
        "eval", help="retrieval and (--answers) answer quality on a QA set; exit 1 past a gate"
    )
    evaluate.add_argument("--corpus", type=Path, default=Path("eval/corpus"))
    evaluate.add_argument("--questions", type=Path, default=Path("eval/qa.jsonl"))
    evaluate.add_argument("-k", type=int, default=5)
    evaluate.add_argument(
        "--answers", action="store_true", help="also ask every question of the service"
    )
    evaluate.add_argument("--report", type=Path, help="write every figure here, as JSON")
    for gate, meaning in GATES.items():
        evaluate.add_argument(f"--{gate}", type=float, help=meaning)

    export = subcommands.add_parser(
        "export-embedder",
        help="export the embedder to ONNX and publish it through the int8 gate (needs .[export])",
    )
    export.add_argument("--output", type=Path, default=Path("models/embedder"))
    export.add_argument("--corpus", type=Path, default=Path("eval/corpus"))
    export.add_argument("--questions", type=Path, default=Path("eval/qa.jsonl"))
    export.add_argument("-k", type=int, default=5)
    export.add_argument("--min-speedup", type=float, help="int8 against fp32 (the gate's 1.3x)")
    export.add_argument(
        "--max-recall-loss", type=float, help="of recall@k on the QA set (the gate's 0.01)"
    )

    demo = subcommands.add_parser(
        "demo", help="prepare the demo model, ingest eval/corpus and serve on 127.0.0.1"
    )
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--corpus", type=Path, default=Path("eval/corpus"))
    demo.add_argument("--once", action="store_true", help="ask one question, then exit")

    args = parser.parse_args(argv)
    if args.command == "serve":
        return commands.serve(args.host, args.port)
    if args.command == "prepare-model":
        return commands.prepare(args.output, args.gguf)
    if args.command == "ingest":
        if args.url:
            return _upload_folder(args.folder, args.url, args.api_key)
        return _ingest_folder(args.folder)
    if args.command == "ask":
        return _ask(args.url, args.question, args.api_key)
    if args.command == "eval":
        return _evaluate(args)
    if args.command == "export-embedder":
        return _export_embedder(args)
    return _demo(args.port, args.corpus, once=args.once)


def _files(folder: Path) -> list[Path]:
    from rag_qa.documents import CONTENT_TYPES

    return sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in CONTENT_TYPES)


def _ingest_folder(folder: Path) -> int:
    """Straight into the configured store, in this process."""
    from tqdm import tqdm

    from rag_qa.errors import ServiceError
    from rag_qa.ingestion import open_ingestor
    from rag_qa.observability import Metrics

    ingestor = open_ingestor(Settings(), Metrics())
    created = duplicates = failed = chunks = 0
    started = time.perf_counter()
    try:
        with tqdm(_files(folder), unit="file") as bar:
            for path in bar:
                bar.set_postfix_str(path.name[-30:])
                try:
                    result = ingestor.ingest(path.name, path.read_bytes())
                except ServiceError as exc:
                    failed += 1
                    tqdm.write(f"{path}: {exc.code}: {exc.message}", file=sys.stderr)
                    continue
                if result.created:
                    created += 1
                    chunks += result.document.chunks
                else:
                    duplicates += 1
    finally:
        ingestor.store.close()
    elapsed = time.perf_counter() - started
    print(
        f"{created} documents ingested ({chunks} chunks, {chunks / elapsed:.1f} chunks/s), "
        f"{duplicates} already stored, {failed} refused"
    )
    return 1 if failed else 0


def _upload_folder(folder: Path, base_url: str, api_key: str | None) -> int:
    """Through a running service's POST /v1/documents."""
    from tqdm import tqdm

    headers = {"X-API-Key": api_key} if api_key else {}
    failed = 0
    with (
        httpx.Client(base_url=base_url, headers=headers, timeout=600) as client,
        tqdm(_files(folder), unit="file") as bar,
    ):
        for path in bar:
            bar.set_postfix_str(path.name[-30:])
            with path.open("rb") as handle:
                response = client.post("/v1/documents", files={"file": (path.name, handle)})
            if response.status_code >= 400:
                failed += 1
                tqdm.write(f"{path}: {response.status_code} {response.text}", file=sys.stderr)
    return 1 if failed else 0


def _ask(base_url: str, question: str, api_key: str | None) -> int:
    """Streams the answer to stdout, then lists the sources; 0 when it arrived."""
    headers = {"X-API-Key": api_key} if api_key else {}
    body = {"question": question, "stream": True}
    with httpx.stream(
        "POST", base_url + "/v1/ask", json=body, headers=headers, timeout=120
    ) as response:
        if response.status_code != 200:
            print(response.read().decode(), file=sys.stderr)
            return 1
        event = ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
                if event == "answer":
                    print(data["text"], end="", flush=True)
                elif event == "sources":
                    print()
                    for source in data["sources"]:
                        mark = "*" if source["cited"] else " "
                        print(
                            f"{mark}[{source['number']}] {source['title']} "
                            f"(chunk {source['position']}, score {source['score']:.2f})"
                        )
                elif event == "error":
                    print(f"\nerror: {data['error']['message']}", file=sys.stderr)
                    return 1
    return 0


# The gates `eval` takes: a figure and the side of its bound that passes.
GATES = {
    "min-recall": "recall@k of the first relevant chunk",
    "min-evidence-recall": "share of questions with every passage in the top k",
    "min-multi-evidence-recall": "the same, on multi-fact questions",
    "min-abstention": "share of unanswerable questions abstained on (with --answers)",
    "max-false-abstention": "share of answerable questions abstained on",
    "min-citation-precision": "share of cited sources that hold the evidence",
    "min-cites-a-source": "share of answered questions citing at least one source",
    "min-containment": "share of answerable questions whose short answer is in the answer",
    "max-latency-p50-s": "median ask latency, in seconds",
    "max-latency-p95-s": "95th percentile ask latency, in seconds",
}


def _evaluate(args: argparse.Namespace) -> int:
    from rag_qa.evaluation import (
        CURVE_THRESHOLDS,
        evaluate,
        evaluate_answers,
        load_questions,
    )

    questions = load_questions(args.questions)
    settings = Settings()
    started = time.perf_counter()
    report = evaluate(settings, args.corpus, questions, args.k)
    for outcome in report.outcomes:
        if not outcome.all_found:
            print(
                f"miss  {outcome.question.kind} {outcome.question.document}: "
                f"{outcome.question.question} ({outcome.found} of "
                f"{len(outcome.question.evidence)} passages; best score {outcome.top_score:.2f})"
            )
    print(f"{report.summary()} in {time.perf_counter() - started:.1f} s")
    figures = {
        "recall": report.recall,
        "recall_at_1": report.recall_at(1),
        "mrr": report.mrr,
        "evidence-recall": report.evidence_recall(),
        "multi-evidence-recall": report.evidence_recall("multi"),
    }
    answers = None
    if args.answers:
        started = time.perf_counter()
        key: str | None = None
        answers = evaluate_answers(settings, args.corpus, questions, api_key=key)
        print("answerability threshold  abstained (unanswerable)  abstained (answerable)")
        for threshold, abstained, wrongly in answers.curve(CURVE_THRESHOLDS):
            mark = "  <- min_answerability" if threshold == answers.threshold else ""
            print(f"{threshold:>23.3f}  {100 * abstained:>23.1f}%  {100 * wrongly:>21.1f}%{mark}")
        print(f"{answers.summary()} in {time.perf_counter() - started:.1f} s")
        figures |= {
            "abstention": answers.abstention,
            "false-abstention": answers.false_abstention,
            "citation-precision": answers.citation_precision,
            "cites-a-source": answers.cites_a_source,
            "containment": answers.containment,
            "latency-p50-s": answers.latency_s(0.5),
            "latency-p95-s": answers.latency_s(0.95),
        }
    if args.report:
        document = {"retrieval": figures, "answers": answers.to_json() if answers else None}
        args.report.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    failed = []
    for gate in GATES:
        bound = getattr(args, gate.replace("-", "_"))
        side, _, name = gate.partition("-")
        if bound is None:
            continue
        if name not in figures:
            print(f"--{gate} needs --answers", file=sys.stderr)
            return 2
        value = figures[name]
        if (value < bound) if side == "min" else (value > bound):
            failed.append(f"{name} {value:.3f} is {'below' if side == 'min' else 'above'} {bound}")
    for line in failed:
        print(line, file=sys.stderr)
    return 1 if failed else 0


def _export_embedder(args: argparse.Namespace) -> int:
    from rag_qa.embedder_export import export_embedder, summary
    from rag_qa.evaluation import load_questions

    given = {"min_speedup": args.min_speedup, "max_recall_loss": args.max_recall_loss}
    published = export_embedder(
        Settings(),
        args.output,
        corpus=args.corpus,
        questions=load_questions(args.questions),
        k=args.k,
        **{name: value for name, value in given.items() if value is not None},
    )
    print(summary(published))
    return 0


def _demo(port: int, corpus: Path, *, once: bool) -> int:
    from rag_qa.app import create_app

    settings = commands.demo_settings(port)
    server = commands.BackgroundServer(create_app(settings), port)
    if not server.start():
        return 1
    base_url = server.base_url
    key: str | None = None
    status = _upload_folder(corpus, base_url, key) if corpus.is_dir() else 0
    print(f"API: {base_url}/docs")
    if once:
        status = status or _ask(base_url, "What is this collection of documents about?", key)
        server.stop()
        return status
    server.wait()
    return status
