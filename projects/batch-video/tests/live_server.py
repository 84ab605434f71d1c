"""Runs the real app under uvicorn on a free local port, in a background thread."""

from __future__ import annotations

import contextlib
import signal
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import uvicorn
from fastapi import FastAPI


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class LiveServer:
    url: str
    server: uvicorn.Server
    thread: threading.Thread

    def terminate(self) -> None:
        """What SIGTERM does to uvicorn (its signal handler calls this): stop accepting
        connections, finish the requests in flight, then run the app's shutdown."""
        self.server.handle_exit(signal.SIGTERM, None)


@contextlib.contextmanager
def live_server(
    app: FastAPI, *, wait_ready: bool = True, timeout_s: float = 60
) -> Iterator[LiveServer]:
    """Serves `app` until the block ends (or `terminate` is called), once /readyz says 200
    or, without `wait_ready`, as soon as the server answers at all."""
    port = free_port()
    # As the service's `serve` command runs it: X-Forwarded-For is the app's to read.
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, lifespan="on", proxy_headers=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    running = LiveServer(f"http://127.0.0.1:{port}", server, thread)
    try:
        _wait(running.url, timeout_s, thread, require_ready=wait_ready)
        yield running
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextlib.contextmanager
def serve(app: FastAPI, *, wait_ready: bool = True, timeout_s: float = 60) -> Iterator[str]:
    """`live_server`, when only the base URL matters."""
    with live_server(app, wait_ready=wait_ready, timeout_s=timeout_s) as running:
        yield running.url


def _wait(
    base_url: str, timeout_s: float, thread: threading.Thread, *, require_ready: bool
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not thread.is_alive():
            raise RuntimeError("the server thread exited during start-up")
        try:
            status = httpx.get(base_url + "/readyz", timeout=2).status_code
        except httpx.TransportError:
            pass
        else:
            if status == 200 or not require_ready:
                return
        time.sleep(0.05)
    raise TimeoutError(f"{base_url} was not ready within {timeout_s:g} s")
