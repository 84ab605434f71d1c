"""Command line: `python -m image_classification serve | train-demo | demo`."""

from __future__ import annotations

import argparse
import json
import mimetypes
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import uvicorn

from image_classification.settings import Settings

DEMO_DIR = Path("models/demo")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="image_classification", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser(
        "serve", help="run the HTTP service (settings from APP_* variables)"
    )
    serve.add_argument("--host", help="override APP_HOST")
    serve.add_argument("--port", type=int, help="override APP_PORT")

    train = commands.add_parser("train-demo", help="train the demo digits model")
    train.add_argument(
        "--output", type=Path, default=DEMO_DIR, help="where to write the checkpoint"
    )
    train.add_argument("--epochs", type=int, default=25)

    demo = commands.add_parser(
        "demo", help="train the demo model if needed, serve it and classify a sample image"
    )
    demo.add_argument("--port", type=int, default=8000)
    demo.add_argument("--once", action="store_true", help="exit after the sample classification")

    args = parser.parse_args(argv)
    if args.command == "serve":
        return _serve(args.host, args.port)
    if args.command == "train-demo":
        return _train(args.output, args.epochs)
    return _demo(args.port, once=args.once)


def _serve(host: str | None, port: int | None) -> int:
    settings = Settings()
    uvicorn.run(
        "image_classification.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,  # the app configures JSON logging itself
        timeout_graceful_shutdown=30,
    )
    return 0


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
    config = uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    _wait_ready(f"{base}/readyz", timeout_s=60)
    sample = DEMO_DIR / "samples" / "digit-7.png"
    print(f"POST {base}/v1/classify  files={sample}")
    print(json.dumps(_classify(f"{base}/v1/classify?top_k=3", sample), indent=2))
    if once:
        server.should_exit = True
        thread.join()
        return 0
    print(f"serving on {base} (docs at {base}/docs); Ctrl-C to stop")
    try:
        thread.join()
    except KeyboardInterrupt:
        server.should_exit = True
        thread.join()
    return 0


def _wait_ready(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - local URL
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            error = json.loads(exc.read() or b"{}").get("error", {})
            if error.get("code") == "model_load_failed":
                sys.exit(f"the model failed to load: {error.get('message')}")
        except OSError:
            pass
        time.sleep(0.2)
    sys.exit(f"the service did not become ready within {timeout_s:g} s")


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
