"""What the LLM services' command lines share: `serve`, `prepare-model`, and the demo's
server on a background thread."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI

from rag_qa.settings import Settings


def serve(host: str | None, port: int | None) -> int:
    settings = Settings()
    uvicorn.run(
        "rag_qa.app:create_app",
        factory=True,
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,  # the app configures JSON logging itself
        timeout_graceful_shutdown=30,
    )
    return 0


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
            uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None)
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout_s: float = 300) -> bool:
        """Starts it; True once /readyz answers 200, False when it never does (stopped)."""
        self.thread.start()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and self.thread.is_alive():
            try:
                if httpx.get(self.base_url + "/readyz", timeout=2).status_code == 200:
                    return True
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.server.should_exit = True
        return False

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def wait(self) -> None:
        """Serves until Ctrl-C."""
        try:
            self.thread.join()
        except KeyboardInterrupt:
            self.server.should_exit = True
