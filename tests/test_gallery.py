"""projects/ is exactly what the templates render; nobody edits it by hand."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.gallery import (
    PROJECTS,
    _compare,
    combinations,
    gallery_differences,
    project_kinds,
    render,
)


def test_every_kind_has_a_committed_rendering() -> None:
    assert sorted(p.name for p in PROJECTS.iterdir() if p.is_dir()) == sorted(project_kinds())


@pytest.mark.parametrize("kind", project_kinds())
def test_projects_equal_a_fresh_render_byte_for_byte(kind: str) -> None:
    assert gallery_differences(kind) == [], f"run `nox -s render`: projects/{kind} is stale"


def test_every_kind_with_a_template_has_answer_combinations() -> None:
    for kind in project_kinds():
        assert combinations(kind), kind
        assert next(iter(combinations(kind))) == "defaults"


def test_a_hand_edit_in_projects_is_detected(tmp_path: Path) -> None:
    kind = project_kinds()[0]
    fresh = render(kind, tmp_path / "fresh", gallery=True)
    edited = tmp_path / "edited"
    shutil.copytree(fresh, edited)
    readme = edited / "README.md"
    readme.write_text(readme.read_text() + "\nedited by hand\n")
    (edited / "stray.txt").write_text("x")
    assert _compare(fresh, edited) == [
        "stray.txt (only in projects/)",
        "README.md (content differs)",
    ]


def test_the_gallery_answers_file_is_reproducible() -> None:
    for kind in project_kinds():
        answers = yaml.safe_load((PROJECTS / kind / ".copier-answers.yml").read_text())
        assert answers["project_kind"] == kind
        assert "_commit" not in answers
        assert "_src_path" not in answers
