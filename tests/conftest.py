"""Fixtures for the template tests: renders of every answer combination, made once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gallery import cases, combinations, render


@pytest.fixture(scope="session")
def copier_template_paths() -> list[str]:
    """What pytest-copier copies into its temporary template repository."""
    return ["copier.yml", "templates"]


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every kind's combinations, keyed "<kind>/<combination>" (the tests' parameter ids)."""
    root = tmp_path_factory.mktemp("renders")
    return {
        f"{kind}/{name}": render(kind, root / kind / name, combinations(kind)[name])
        for kind, name in cases()
    }
