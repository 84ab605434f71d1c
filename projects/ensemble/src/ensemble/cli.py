"""Command line: `python -m ensemble <command>`, one of serve, train-demo,
fit-stacker, evaluate, export-triton and demo."""

from __future__ import annotations

import argparse
import json
import urllib.request
from pathlib import Path

from ensemble import commands
from ensemble.settings import Settings

DEMO_DIR = Path("models/demo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ensemble", description=__doc__)
    subcommands = parser.add_subparsers(dest="command", required=True)

    commands.add_serve(subcommands)

    train = subcommands.add_parser(
        "train-demo", help="train the demo members, fit the stacker (needs .[export])"
    )
    train.add_argument("--output", type=Path, default=DEMO_DIR, help="where to write them")
    train.add_argument("--epochs", type=int, default=40)

    members = Path(Settings.model_fields["members_path"].default)
    fit = subcommands.add_parser(
        "fit-stacker", help="fit the stacking combiner on a held-out split (needs .[export])"
    )
    fit.add_argument("--members", type=Path, default=members, help="the members file")
    fit.add_argument("--split", type=Path, required=True, help=".npz with inputs and targets")
    fit.add_argument("--output", type=Path, help="default: the members file's stacker")

    evaluate = subcommands.add_parser(
        "evaluate", help="accuracy of each member and aggregation on a held-out split"
    )
    evaluate.add_argument("--members", type=Path, default=members, help="the members file")
    evaluate.add_argument("--split", type=Path, required=True, help=".npz with inputs and targets")
    evaluate.add_argument("--output", type=Path, help="also write the figures here (JSON)")
    evaluate.add_argument(
        "--min-accuracy", type=float, default=0.0, help="fail if the best aggregation is below"
    )

    triton = subcommands.add_parser(
        "export-triton", help="write the ensemble as a Triton model repository"
    )
    triton.add_argument("--members", type=Path, default=members, help="the members file")
    triton.add_argument("--output", type=Path, default=Path("model_repository"))

    demo = subcommands.add_parser(
        "demo", help="train the demo members if needed, serve them and classify a sample"
    )
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--once", action="store_true", help="exit after the sample classification")

    args = parser.parse_args(argv)
    if args.command == "serve":
        return commands.serve(args.host, args.port)
    if args.command == "train-demo":
        return _train(args.output, args.epochs)
    if args.command == "fit-stacker":
        from ensemble.stacking import fit_stacker

        print(f"wrote {fit_stacker(args.members, args.split, args.output)}")
        return 0
    if args.command == "evaluate":
        return _evaluate(args.members, args.split, args.output, args.min_accuracy)
    if args.command == "export-triton":
        from ensemble.triton_repository import export_triton

        # A member's own batching, else the settings' defaults (no service settings needed).
        written = export_triton(args.members, args.output, Settings.model_construct())
        print(f"wrote {args.output}/; serve it on Triton, then APP_MEMBERS_PATH={written}")
        return 0
    return _demo(args.port, once=args.once)


def _train(output: Path, epochs: int) -> int:
    from ensemble.training import train_demo_ensemble

    report = train_demo_ensemble(output, epochs=epochs)
    figures = ", ".join(f"{name} {value:.3f}" for name, value in report.accuracy.items())
    print(f"test-split accuracy: {figures} ({report.seconds:.1f} s); members in {output}/")
    return 0 if report.best_member >= 0.9 else 1


def _evaluate(members: Path, split: Path, output: Path | None, minimum: float) -> int:
    from ensemble.aggregation import AGGREGATIONS
    from ensemble.stacking import evaluate, write_evaluation

    accuracy = evaluate(members, split)
    print(json.dumps(accuracy, indent=2))
    if output is not None:
        write_evaluation(accuracy, output)
    best = max(value for name, value in accuracy.items() if name in AGGREGATIONS)
    if best < minimum:
        print(f"the best aggregation reaches {best:.4f}, under the bound {minimum:g}")
        return 1
    return 0


def _demo(port: int, *, once: bool) -> int:
    from ensemble.app import create_app
    from ensemble.schemas import DIGIT_THREE

    if not (DEMO_DIR / "members.yaml").is_file():
        _train(DEMO_DIR, 40)
    overrides: dict[str, object] = {
        "members_path": DEMO_DIR / "members.yaml",
        "port": port,
        "log_json": False,
    }
    settings = Settings(**overrides)  # type: ignore[arg-type]
    server = commands.BackgroundServer(create_app(settings), port)
    if not server.start():
        return 1
    url = f"{server.base_url}/v1/classify"
    body = json.dumps({"inputs": [DIGIT_THREE]}).encode()
    headers = {"Content-Type": "application/json"}
    print(f"POST {url}  (a handwritten 3, 64 pixels)")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - local URL
        print(json.dumps(json.loads(response.read()), indent=2))
    if once:
        server.stop()
        return 0
    print(f"serving on {server.base_url} (docs at {server.base_url}/docs); Ctrl-C to stop")
    server.wait()
    return 0
