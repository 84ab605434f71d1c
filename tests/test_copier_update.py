"""`copier update` carries template changes into a project and keeps the user's edits."""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from copier import run_update
from pytest_copier.plugin import CopierFixture

from tests import kinds


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


def test_update_to_head_keeps_local_edits_and_brings_template_changes(
    copier: CopierFixture, copier_template: Path, tmp_path: Path
) -> None:
    project = tmp_path / "service"
    kind = kinds.all_kinds()[0]
    copier.copy(project, project_kind=kind.name)
    old_commit = yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"]
    assert old_commit == "99.99.99"
    git("init", "-q", cwd=project)
    git("add", "-A", cwd=project)
    git("commit", "-qm", "generated", cwd=project)

    # The user edits a generated file in their project...
    settings = project / "src" / kind.package / "settings.py"
    original = settings.read_text()
    edited = original.replace("Field(default=8000,", "Field(default=9000,")
    assert edited != original
    settings.write_text(edited)
    git("commit", "-qam", "serve on port 9000", cwd=project)

    # ...while the template moves on with a change to another part of the same file.
    template_file = (
        copier_template / "templates/_shared/core/src/{{ package_name }}/settings.py.jinja"
    )
    template_file.write_text(
        template_file.read_text().replace(
            "log_json: bool = True", "log_json: bool = True\n    log_color: bool = False"
        )
    )
    git("commit", "-qam", "add log_color", cwd=copier_template)
    head = git("rev-parse", "--short", "HEAD", cwd=copier_template).strip()

    run_update(project, vcs_ref="HEAD", defaults=True, overwrite=True, unsafe=True, quiet=True)

    updated = settings.read_text()
    assert "Field(default=9000," in updated  # the user's edit survived
    assert "log_color: bool = False" in updated  # the template's change arrived
    assert "<<<<<<<" not in updated
    assert not list(project.rglob("*.rej"))
    assert head in yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"]
