"""Starting and stopping contender processes, and measuring what they use.

Every server runs in its own session (process group). Stopping one sends SIGINT to the
group (what Ctrl+C does), waits, then SIGKILLs the group and any descendant that left it.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerSpec:
    """A process to start and the URL that answers 200 once it is ready."""

    name: str
    argv: Sequence[str]
    ready_url: str
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    startup_timeout_s: float = 180.0


class ServerFailed(RuntimeError):
    """A server exited or did not become ready in time."""


@dataclass
class RunningServer:
    spec: ServerSpec
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def start(spec: ServerSpec, log_dir: Path) -> RunningServer:
    log_path = log_dir / f"{spec.name}.log"
    env = {**os.environ, **spec.env}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(spec.argv),
            env=env,
            cwd=spec.cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return RunningServer(spec, process, log_path)


def wait_ready(server: RunningServer) -> float:
    """Polls the ready URL until 200; returns the seconds it took."""
    started = time.monotonic()
    deadline = started + server.spec.startup_timeout_s
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise ServerFailed(
                    f"{server.spec.name} exited with {server.process.returncode}:\n"
                    + server.log_tail()
                )
            with contextlib.suppress(httpx.HTTPError):
                if client.get(server.spec.ready_url).status_code == 200:
                    return time.monotonic() - started
            time.sleep(0.25)
    raise ServerFailed(
        f"{server.spec.name} was not ready after {server.spec.startup_timeout_s:g} s:\n"
        + server.log_tail()
    )


def stop(server: RunningServer, grace_s: float = 15.0) -> None:
    """Stops the server's whole process group, and any descendant that left it."""
    try:
        family = psutil.Process(server.pid).children(recursive=True)
    except psutil.Error:
        family = []
    for process in [*family]:
        with contextlib.suppress(psutil.Error):
            process.resume()  # a suspended process would not see SIGINT
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGCONT)
        os.killpg(server.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.process.wait(timeout=grace_s)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.process.wait(timeout=5)
    for process in family:
        with contextlib.suppress(psutil.Error):
            process.kill()
    psutil.wait_procs(family, timeout=5)


@contextlib.contextmanager
def running(specs: Sequence[ServerSpec], log_dir: Path) -> Iterator[list[RunningServer]]:
    """Starts each server in turn, waits until it is ready, and stops them all on exit."""
    servers: list[RunningServer] = []
    previous = signal.signal(signal.SIGTERM, _raise_system_exit)
    try:
        for spec in specs:
            server = start(spec, log_dir)
            servers.append(server)
            took = wait_ready(server)
            print(f"  {spec.name} ready in {took:.1f} s (pid {server.pid})", flush=True)
        yield servers
    finally:
        for server in reversed(servers):
            stop(server)
        signal.signal(signal.SIGTERM, previous)


def _raise_system_exit(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


class ProcessTree:
    """CPU seconds and resident memory of some processes and all their descendants."""

    def __init__(self, pids: Sequence[int]) -> None:
        self._roots = [psutil.Process(pid) for pid in pids]
        self._seen: dict[int, psutil.Process] = {}

    def _members(self) -> list[psutil.Process]:
        members = []
        for root in self._roots:
            with contextlib.suppress(psutil.Error):
                members += [root, *root.children(recursive=True)]
        for process in members:
            self._seen.setdefault(process.pid, process)
        return members

    def cpu_seconds(self) -> float:
        total = 0.0
        for process in self._members():
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                total += times.user + times.system
        return total

    def suspend(self) -> None:
        """SIGSTOPs every member, so an idle contender takes no CPU from a measured one."""
        for process in self._members():
            with contextlib.suppress(psutil.Error):
                process.suspend()

    def resume(self) -> None:
        for process in [*self._seen.values(), *self._members()]:
            with contextlib.suppress(psutil.Error):
                process.resume()

    def rss_bytes(self) -> int:
        total = 0
        for process in self._members():
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
        return total


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (everything but idle and iowait)."""
    times = psutil.cpu_times()
    busy = ("user", "nice", "system", "irq", "softirq", "steal")  # guest is inside user
    return sum(getattr(times, name, 0.0) for name in busy)


def own_cpu_seconds() -> float:
    times = psutil.Process().cpu_times()
    return times.user + times.system


REPOSITORY = Path(__file__).resolve().parents[1]


def run_python(*args: str, env: Mapping[str, str] | None = None, timeout_s: float = 600.0) -> str:
    """Runs this Python with `args` from the repository root; its stdout, or RuntimeError."""
    result = subprocess.run(
        [sys.executable, *args],
        env={**os.environ, "PYTHONPATH": str(REPOSITORY), **(env or {})},
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed:\n{result.stdout}\n{result.stderr}")
    return result.stdout


def render_project(kind: str, target: Path, answers: Mapping[str, object] | None = None) -> Path:
    """Renders templates/<kind> into `target` as users would (default answers, or these),
    through tests/gallery.py in a child Python; returns `target`."""
    code = (
        "import json, sys; from pathlib import Path; "
        "from tests.gallery import render; "
        "render(sys.argv[1], Path(sys.argv[2]), json.loads(sys.argv[3]))"
    )
    run_python("-c", code, kind, str(target), json.dumps(dict(answers or {})), timeout_s=900.0)
    return target
