"""Build a project's CPU image, run it, and send it one real request through its published
port: image-classification classifies a digit, streaming-chatbot answers a chat completion,
rag-qa ingests a Markdown document and answers a question from it with its sources.

python tests/container.py image-classification     # what `nox -s container -- <kind>` runs
python tests/container.py streaming-chatbot
python tests/container.py rag-qa

With a Docker engine the build uses the Dockerfile's defaults (registries for the base
image and PyTorch's CPU wheels). Without one it uses Debian's podman: the base image is
made locally with debootstrap (the same Debian release, with its Python), and where
PyTorch's CPU index is out of reach the build reads the same wheels from pip's
find-links folders, mounted into the build. The image's contents stay what the
Dockerfile says; only where the files come from changes.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

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
    args = [engine, "build", "--tag", tag, "--file", "Dockerfile"]
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
            args += ["--build-arg", "TORCH_INDEX_URL=https://pypi.org/simple"]
            if links:
                args += ["--build-arg", f"PIP_FIND_LINKS={' '.join(links)}"]
                for folder in links:
                    args += ["--volume", f"{folder}:{folder}:ro"]
    run(*args, str(project))


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


def post_file(
    url: str, field: str, name: str, data: bytes, content_type: str, headers: dict[str, str]
) -> dict[str, object]:
    """One file as multipart/form-data; the JSON answer."""
    boundary = uuid.uuid4().hex
    body = (
        (
            f"--{boundary}\r\n"
            f'Content-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            f"Content-Type: {content_type}\r\n\r\n"
        ).encode()
        + data
        + f"\r\n--{boundary}--\r\n".encode()
    )
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}", **headers},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def classify(url: str, image: Path, headers: dict[str, str]) -> dict[str, object]:
    return post_file(url, "files", image.name, image.read_bytes(), "image/png", headers)


def post_json(url: str, body: dict[str, object], headers: dict[str, str]) -> dict[str, object]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def smoke_image_classification(engine: str, name: str, base: str, headers: dict[str, str]) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        sample = Path(tmp) / "digit-3.png"
        run(engine, "cp", f"{name}:/app/models/demo/samples/digit-3.png", str(sample))
        result = classify(f"{base}/v1/classify?top_k=3", sample, headers)
    log(json.dumps(result))
    top = result["predictions"][0]["labels"][0]  # type: ignore[index]
    if top["label"] != "3":  # type: ignore[index]
        sys.exit(f"the container classified digit 3 as {top}")
    return "classified digit 3"


def smoke_streaming_chatbot(engine: str, name: str, base: str, headers: dict[str, str]) -> str:
    body: dict[str, object] = {
        "model": "smollm2-135m-instruct",
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 16,
        "temperature": 0,
    }
    result = post_json(f"{base}/v1/chat/completions", body, headers)
    log(json.dumps(result))
    try:
        message = result["choices"][0]["message"]  # type: ignore[index]
        content, role = message["content"], message["role"]
    except (KeyError, IndexError, TypeError):
        sys.exit(f"the chat completion has no assistant message: {result}")
    if role != "assistant" or not isinstance(content, str) or not content.strip():
        sys.exit(f"the chat completion's assistant message is empty: {message}")
    usage = result.get("usage")
    if not isinstance(usage, dict) or not all(
        isinstance(usage.get(key), int) and usage[key] > 0
        for key in ("prompt_tokens", "completion_tokens", "total_tokens")
    ):
        sys.exit(f"the chat completion's usage is missing or empty: {usage}")
    return f"answered {content.strip()!r} ({usage['completion_tokens']} tokens)"


RAG_DOCUMENT = b"""# Lighthouses

The Bell Rock lighthouse stands off the coast of Angus in Scotland. It was completed in
1810 and is the oldest surviving sea-washed lighthouse in the world.
"""


def smoke_rag_qa(engine: str, name: str, base: str, headers: dict[str, str]) -> str:
    ingested = post_file(
        f"{base}/v1/documents", "file", "lighthouses.md", RAG_DOCUMENT, "text/markdown", headers
    )
    log(json.dumps(ingested))
    document = ingested.get("document")
    if not isinstance(document, dict) or not document.get("chunks"):
        sys.exit(f"the upload stored no chunks: {ingested}")
    body: dict[str, object] = {
        "question": "When was the Bell Rock lighthouse completed?",
        "stream": False,
        "max_tokens": 32,
    }
    result = post_json(f"{base}/v1/ask", body, headers)
    log(json.dumps(result))
    sources = result.get("sources")
    if not result.get("answered") or not isinstance(sources, list) or not sources:
        sys.exit(f"the answer has no sources: {result}")
    if sources[0].get("document_id") != document["id"]:
        sys.exit(f"the answer's first source is not the uploaded document: {sources[0]}")
    answer = str(result.get("answer", "")).strip()
    if not answer:
        sys.exit(f"the answer is empty: {result}")
    stored = f"stored {document['chunks']} chunk(s)"
    return f"{stored}, answered {answer!r} from {len(sources)} source(s)"


# One real request per kind, sent once the container answers /readyz.
SMOKE = {
    "image-classification": smoke_image_classification,
    "streaming-chatbot": smoke_streaming_chatbot,
    "rag-qa": smoke_rag_qa,
}
# Kinds run read-only, as their Helm chart runs them, with these folders writable (tmpfs).
READ_ONLY_WITH = {"rag-qa": ["/tmp", "/data"]}


def check(kind: str) -> None:
    if kind not in SMOKE:
        sys.exit(f"tests/container.py has no request for {kind}; kinds: {sorted(SMOKE)}")
    project = ROOT / "projects" / kind
    engine = "docker" if docker_engine() else "podman"
    if engine == "podman":
        podman_environment()
    log(f"engine: {engine}")
    tag = f"localhost/{kind}:cpu-check"
    build(engine, project, tag)
    name = f"{kind}-check-{uuid.uuid4().hex[:8]}"
    port = free_port()
    answers = (project / ".copier-answers.yml").read_text()
    env, headers = [], {}
    if "api_key_auth: true" in answers:
        env, headers = ["--env", "APP_API_KEYS=check-key"], {"X-API-Key": "check-key"}
    # Without systemd podman cannot time the HEALTHCHECK; it is run by hand below instead.
    timer = ["--health-interval", "disable"] if engine == "podman" else []
    writable = ["--read-only"] if kind in READ_ONLY_WITH else []
    for folder in READ_ONLY_WITH.get(kind, []):
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
        done = SMOKE[kind](engine, name, base, headers)
        if engine == "podman":
            run("podman", "healthcheck", "run", name)  # the image's HEALTHCHECK passes
        user = run(engine, "exec", name, "id", "-u", capture_output=True).stdout.strip()
        if user == "0":
            sys.exit("the container runs as root")
        log(f"{done} through port {port}; HEALTHCHECK passes; uid {user}")
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
    for kind in parser.parse_args().kinds:
        check(kind)
    return 0


if __name__ == "__main__":
    sys.exit(main())
