"""A new kind is an addition: following docs/extending.md in a copy of the repository, a
folder with a manifest and the kind's own files renders with --defaults, is ruff-clean,
passes its own tests, and joins the gallery, the nox sessions, the container check and a
generated CI workflow, with no other file touched."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.kinds import ROOT

GUIDE = ROOT / "docs" / "extending.md"
# A fenced block whose title is a path of the new kind: ```python title="templates/x/y"
BLOCK = re.compile(r'^(`{3,})\w* title="(templates/[^"]+)"\n(.*?)^\1$', re.M | re.S)


def the_new_kind() -> tuple[str, dict[str, str]]:
    """The kind the guide adds, and its files (path in the repository -> text)."""
    files = {path: text for _, path, text in BLOCK.findall(GUIDE.read_text())}
    names = {path.split("/")[1] for path in files}
    assert len(names) == 1, f"the guide's files belong to {names}"
    return names.pop(), files


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    assert result.returncode == 0, (
        f"{' '.join(args)}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    )
    return result.stdout


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository (what git tracks), with the guide's kind added to it."""
    copy = tmp_path_factory.mktemp("repository")
    tracked = run("git", "ls-files", "-z", cwd=ROOT).split("\0")
    for name in filter(None, tracked):
        source = ROOT / name
        if source.is_file():
            target = copy / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(source.read_bytes())
    kind, files = the_new_kind()
    assert not (copy / "templates" / kind).exists(), f"templates/{kind} exists already"
    for path, text in files.items():
        (copy / path).parent.mkdir(parents=True, exist_ok=True)
        (copy / path).write_text(text)
    return copy


def test_the_guide_adds_a_kind_with_only_its_folder_and_manifest() -> None:
    kind, files = the_new_kind()
    assert f"templates/{kind}/kind.yml" in files
    assert all(path.startswith(f"templates/{kind}/") for path in files)


def test_the_new_kind_renders_with_defaults_and_passes_its_own_tests(
    repository: Path, tmp_path: Path
) -> None:
    kind, _ = the_new_kind()
    project = tmp_path / "project"
    run(
        sys.executable, "-m", "copier", "copy", "--trust", "--defaults",
        "--data", f"project_kind={kind}", str(repository), str(project),
        cwd=repository,
    )  # fmt: skip
    run(sys.executable, "-m", "ruff", "check", "--no-cache", ".", cwd=project)
    run(sys.executable, "-m", "ruff", "format", "--no-cache", "--check", ".", cwd=project)
    summary = run(
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        cwd=project, env={"PYTHONPATH": "src", "TEST_DEVICE": "cpu"},
    )  # fmt: skip
    assert re.search(r"\d+ passed", summary)
    workflow = yaml.safe_load((project / ".github" / "workflows" / "ci.yml").read_text())
    runs = " ".join(
        step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"]
    )
    assert "python tests/smoke.py http://localhost:8000" in runs
    assert f"helm lint --strict deploy/helm/{kind}" in runs
    manifest = yaml.safe_load((repository / "templates" / kind / "kind.yml").read_text())
    assert yaml.safe_load((project / "tests" / "smoke.json").read_text()) == manifest["smoke"]


def test_the_new_kind_joins_the_gallery_and_every_session(repository: Path) -> None:
    kind, _ = the_new_kind()
    run(sys.executable, "-m", "tests.gallery", "--write", "--kind", kind, cwd=repository)
    run(sys.executable, "-m", "tests.gallery", "--check", cwd=repository)
    assert (repository / "projects" / kind / "src" / kind.replace("-", "_") / "app.py").is_file()
    sessions = run(sys.executable, "-m", "nox", "--list", cwd=repository)
    for session in (
        f"kind(kind='{kind}', device='cpu')",
        f"container(kind='{kind}')",
        f"combination(combination='{kind}/auth-no-tracing')",
    ):
        assert session in sessions, f"no {session} in\n{sessions}"
    kinds = run(sys.executable, "-m", "tests.gallery", "--kinds", cwd=repository).split()
    assert kind in kinds
