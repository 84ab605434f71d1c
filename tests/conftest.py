"""Fixtures for the template tests: renders of every answer combination, made once."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.gallery import COMBINATIONS, render

KIND = "image-classification"


@pytest.fixture(scope="session")
def copier_template_paths() -> list[str]:
    """What pytest-copier copies into its temporary template repository."""
    return ["copier.yml", "templates"]


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("renders")
    return {name: render(KIND, root / name, answers) for name, answers in COMBINATIONS.items()}
