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
from typing import Any

import uvicorn
from fastapi import FastAPI

from batch_video.settings import Settings

Subcommands = argparse._SubParsersAction  # what `ArgumentParser.add_subparsers` returns


def add_serve(subcommands: Subcommands[argparse.ArgumentParser]) -> None:
    serve = subcommands.add_parser("serve", help="run the service (settings from APP_* variables)")
    serve.add_argument("--host", help="override APP_HOST")
    serve.add_argument("--port", type=int, help="override APP_PORT")


def serve(host: str | None, port: int | None) -> int:
    settings = Settings()
    uvicorn.run(
        "batch_video.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,  # the app configures JSON logging itself
        proxy_headers=False,  # the app reads X-Forwarded-For from APP_TRUSTED_PROXIES only
        timeout_graceful_shutdown=30,
    )
    return 0


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
