"""Command line: `python -m image_classification serve | train-demo | demo`."""

from __future__ import annotations

import argparse
import json
import mimetypes
import urllib.request
import uuid
from pathlib import Path

from image_classification import commands
from image_classification.settings import Settings

DEMO_DIR = Path("models/demo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="image_classification", description=__doc__)
    subcommands = parser.add_subparsers(dest="command", required=True)

    commands.add_serve(subcommands)

    train = subcommands.add_parser("train-demo", help="train the demo digits model")
    train.add_argument(
        "--output", type=Path, default=DEMO_DIR, help="where to write the checkpoint"
    )
    train.add_argument("--epochs", type=int, default=25)

    demo = subcommands.add_parser(
        "demo", help="train the demo model if needed, serve it and classify a sample image"
    )
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--once", action="store_true", help="exit after the sample classification")

    args = parser.parse_args(argv)
    if args.command == "serve":
        return commands.serve(args.host, args.port)
    if args.command == "train-demo":
        return _train(args.output, args.epochs)
    return _demo(args.port, once=args.once)


def _train(output: Path, epochs: int) -> int:
    from image_classification.training import train_demo_model

    report = train_demo_model(output, epochs=epochs)
    print(
        f"held-out accuracy {report.accuracy:.3f} on {report.test_images} images "
        f"({report.seconds:.1f} s); checkpoint in {output}/"
    )
    return 0 if report.accuracy >= 0.95 else 1


def _demo(port: int, *, once: bool) -> int:
    from image_classification.app import create_app

    if not (DEMO_DIR / "model.pt").is_file():
        _train(DEMO_DIR, 25)
    overrides: dict[str, object] = {
        "model_path": DEMO_DIR / "model.pt",
        "port": port,
        "log_json": False,
        "device": "auto",  # the demo runs on a GPU where there is one, else on CPU
    }
    settings = Settings(**overrides)  # type: ignore[arg-type]
    server = commands.BackgroundServer(create_app(settings), port)
    if not server.start():
        return 1
    sample = DEMO_DIR / "samples" / "digit-7.png"
    url = f"{server.base_url}/v1/classify"
    print(f"POST {url}  files={sample}")
    print(json.dumps(_classify(f"{url}?top_k=3", sample), indent=2))
    if once:
        server.stop()
        return 0
    print(f"serving on {server.base_url} (docs at {server.base_url}/docs); Ctrl-C to stop")
    server.wait()
    return 0


def _classify(url: str, image: Path) -> object:
    boundary = uuid.uuid4().hex
    content_type = mimetypes.guess_type(image.name)[0] or "application/octet-stream"
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="files"; filename="{image.name}"\r\n'
        f"Content-Type: {content_type}\r\n\r\n"
    )
    body = head.encode() + image.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - local URL
        return json.loads(response.read())
