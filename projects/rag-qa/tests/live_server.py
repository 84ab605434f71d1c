"""Runs the real app under uvicorn on a free local port, in a background thread."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import uvicorn
from fastapi import FastAPI


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def serve(app: FastAPI, *, wait_ready: bool = True, timeout_s: float = 60) -> Iterator[str]:
    """Serves `app` and yields its base URL once /readyz says 200, or, without
    `wait_ready`, as soon as the server answers at all."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait(base_url, timeout_s, thread, require_ready=wait_ready)
        yield base_url
    finally:
        server.should_exit = True
        thread.join(timeout=30)


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
