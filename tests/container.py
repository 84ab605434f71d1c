"""Build a project's CPU image, run it, and send its smoke requests through the published
port: the steps of the project's tests/smoke.json (its kind's manifest says what they are),
sent and checked by the project's own tests/smoke.py, as its CI workflow does.

python -m tests.container <kind> [<kind> ...]     # what `nox -s "container(kind='<kind>')"` runs
python -m tests.container <kind> --combination <name>   # one of its answer combinations

With a Docker engine the build uses the Dockerfile's defaults (registries for the base
image and PyTorch's CPU wheels). Without one it uses Debian's podman: the base image is
made locally with debootstrap (the same Debian release, with its Python), and where
PyTorch's CPU index is out of reach the build reads the same wheels from pip's
find-links folders, mounted into the build. The image's contents stay what the
Dockerfile says; only where the files come from changes.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from tests import kinds

ROOT = Path(__file__).resolve().parents[1]
CACHE = ROOT / ".nox" / "container-cache"
LOCAL_BASE = "localhost/debian-python:bookworm"
PODMAN_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


def log(message: str) -> None:
    print(f"container: {message}", flush=True)


def run(*args: str, **kwargs: object) -> subprocess.CompletedProcess[str]:
    log(" ".join(args))
    return subprocess.run(args, check=True, text=True, **kwargs)  # type: ignore[call-overload]


def docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(["docker", "info"], capture_output=True, text=True, check=False)
    return probe.returncode == 0


def podman_environment() -> None:
    for tool in ("podman", "debootstrap"):
        if shutil.which(tool) is None:
            sys.exit(
                f"no Docker engine and no {tool}: apt-get install podman buildah runc debootstrap"
            )
    CACHE.mkdir(parents=True, exist_ok=True)
    conf = CACHE / "containers.conf"
    conf.write_text(PODMAN_CONF)
    os.environ["CONTAINERS_CONF"] = str(conf)


def local_base_image() -> str:
    """Debian bookworm with its Python, made with debootstrap and imported into podman."""
    exists = subprocess.run(["podman", "image", "exists", LOCAL_BASE], check=False)
    if exists.returncode == 0:
        return LOCAL_BASE
    with tempfile.TemporaryDirectory(dir=CACHE) as tmp:
        rootfs = Path(tmp) / "rootfs"
        run(
            "debootstrap", "--variant=minbase",
            "--include=python3,python3-venv,ca-certificates", "bookworm", str(rootfs),
        )  # fmt: skip
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        run("podman", "import", "-", LOCAL_BASE, stdin=tar.stdout, stdout=subprocess.DEVNULL)
        tar.wait()
    return LOCAL_BASE


def reachable(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=10):
            return True
    except (urllib.error.URLError, OSError):
        return False


def find_links() -> list[str]:
    """pip's find-links folders on this machine (environment or pip config)."""
    value = os.environ.get("PIP_FIND_LINKS", "")
    if not value:
        config = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", "global.find-links"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        value = config.stdout if config.returncode == 0 else ""
    return [p for p in value.split() if Path(p).is_dir()]


def build(engine: str, project: Path, tag: str) -> None:
    args = [engine, "build", "--file", "Dockerfile"]
    if engine == "podman":
        # HEALTHCHECK is part of the Docker image format only; pip needs the network and
        # the host's CA bundle (which may hold a proxy's CA).
        args += [
            "--format",
            "docker",
            "--network",
            "host",
            "--build-arg",
            f"BASE_IMAGE={local_base_image()}",
        ]
        args += [
            "--volume",
            "/etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro",
        ]
        if not reachable("https://download.pytorch.org/whl/cpu/torch/"):
            links = find_links()
            log(f"PyTorch's CPU index is out of reach: its wheels come from {links or 'PyPI'}")
            for name in ("TORCH_INDEX_URL", "EXPORT_TORCH_INDEX_URL"):
                args += ["--build-arg", f"{name}=https://pypi.org/simple"]
            if links:
                args += ["--build-arg", f"PIP_FIND_LINKS={' '.join(links)}"]
                for folder in links:
                    args += ["--volume", f"{folder}:{folder}:ro"]
    # The build stage gets a tag of its own: the prune after the check then keeps its
    # layers (the virtualenv with torch, shared by every kind), and the next build of any
    # kind starts from them instead of from scratch.
    run(*args, "--target", "build", "--tag", f"{tag}-build", str(project))
    run(*args, "--tag", tag, str(project))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    raise TimeoutError(f"{url} did not answer 200 within {timeout_s:g} s")


def smoke(engine: str, name: str, base: str, project: Path, api_key: str | None) -> None:
    """Copies the files the steps take from the container out of it, then runs the
    project's tests/smoke.py against the published port."""
    script = project / "tests" / "smoke.py"
    wanted = subprocess.run(
        [sys.executable, str(script), "--container-files"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    with tempfile.TemporaryDirectory() as files:
        for path in wanted:
            run(engine, "cp", f"{name}:{path}", files)
        key = ["--api-key", api_key] if api_key else []
        run(sys.executable, str(script), base, "--files", files, *key)


def check(kind_name: str, combination: str | None = None) -> None:
    kind = kinds.kind(kind_name)
    if combination is None:
        check_project(kind, ROOT / "projects" / kind.name)
        return
    from tests.gallery import render

    with tempfile.TemporaryDirectory(prefix=f"{kind.name}-{combination}-") as folder:
        project = Path(folder) / combination
        render(kind.name, project, kind.combinations[combination])
        check_project(kind, project)


def check_project(kind: kinds.Kind, project: Path) -> None:
    engine = "docker" if docker_engine() else "podman"
    if engine == "podman":
        podman_environment()
    log(f"engine: {engine}")
    tag = f"localhost/{kind.name}:cpu-check"
    build(engine, project, tag)
    name = f"{kind.name}-check-{uuid.uuid4().hex[:8]}"
    port = free_port()
    answers = (project / ".copier-answers.yml").read_text()
    env, api_key = [], None
    if "api_key_auth: true" in answers:
        env, api_key = ["--env", "APP_API_KEYS=check-key"], "check-key"
    # Without systemd podman cannot time the HEALTHCHECK; it is run by hand below instead.
    timer = ["--health-interval", "disable"] if engine == "podman" else []
    # Kinds whose chart runs them read-only run so here too, with these folders writable.
    folders = kind.get("container", {}).get("writable", [])
    writable = ["--read-only"] if folders else []
    for folder in folders:
        writable += ["--tmpfs", f"{folder}:rw,mode=1777"]
    run(
        engine,
        "run",
        "--detach",
        "--name",
        name,
        "--publish",
        f"127.0.0.1:{port}:8000",
        *timer,
        *writable,
        *env,
        tag,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/readyz", timeout_s=300)
        log(f"{base}/readyz answers 200")
        smoke(engine, name, base, project, api_key)
        if engine == "podman":
            run("podman", "healthcheck", "run", name)  # the image's HEALTHCHECK passes
        user = run(engine, "exec", name, "id", "-u", capture_output=True).stdout.strip()
        if user == "0":
            sys.exit("the container runs as root")
        log(f"the smoke requests pass through port {port}; HEALTHCHECK passes; uid {user}")
        size = run(
            engine, "image", "inspect", "--format", "{{.Size}}", tag, capture_output=True
        ).stdout.strip()
        torch = subprocess.run(
            [engine, "exec", name, "python", "-c", "import torch"], capture_output=True, check=False
        )
        carried = "carries torch" if torch.returncode == 0 else "carries no torch"
        log(f"image {tag}: {int(size) / 1e6:.0f} MB, {carried}")
        runtime = tomllib.loads((project / "pyproject.toml").read_text())["project"]
        needs_torch = any(re.match(r"torch\b", r) for r in runtime["dependencies"])
        if torch.returncode == 0 and not needs_torch:
            sys.exit("the service runs without torch, yet the image carries it")
    finally:
        subprocess.run([engine, "logs", name], check=False)
        subprocess.run([engine, "rm", "--force", name], check=False, capture_output=True)
        # Earlier builds of the tag are left untagged; keep the layer cache, drop those.
        subprocess.run([engine, "image", "prune", "--force"], check=False, capture_output=True)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("kinds", nargs="+")
    parser.add_argument("--combination", help="an answer combination of the (one) kind")
    args = parser.parse_args()
    if args.combination and len(args.kinds) != 1:
        parser.error("--combination takes one kind")
    for kind in args.kinds:
        check(kind, args.combination)
    return 0


if __name__ == "__main__":
    sys.exit(main())
