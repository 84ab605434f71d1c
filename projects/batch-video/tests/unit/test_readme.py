"""The README's settings tables say what the service really defaults to."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic.fields import FieldInfo

from batch_video.settings import Settings

README = Path(__file__).resolve().parents[2] / "README.md"
_CODE = re.compile(r"`([^`]+)`")


def documented_defaults() -> list[tuple[str, str]]:
    """(setting, default) for each table row whose first cell names APP_* variables and
    whose second gives one literal default for each, in order."""
    pairs = []
    for line in README.read_text(encoding="utf-8").splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3:
            continue
        names = [n for n in _CODE.findall(cells[0]) if n.startswith("APP_")]
        values = _CODE.findall(cells[1])
        if names and len(values) == len(names) and cells[1].count("`") == 2 * len(values):
            settings = [name.removeprefix("APP_").lower() for name in names]
            pairs += list(zip(settings, values, strict=True))
    return pairs


def shown(field: FieldInfo) -> str | None:
    """The default as the README writes it; None for one it cannot state literally."""
    value = field.get_default(call_default_factory=True)
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float, str, Path)):
        return str(value)
    return None


def test_every_default_the_readme_states_is_the_settings_default() -> None:
    fields = Settings.model_fields
    checked = 0
    for name, documented in documented_defaults():
        assert name in fields, f"the README documents APP_{name.upper()}, which is no setting"
        actual = shown(fields[name])
        if actual is None:
            continue
        if re.fullmatch(r"-?[0-9.]+", documented) and re.fullmatch(r"-?[0-9.]+", actual):
            assert float(documented) == float(actual), f"APP_{name.upper()}: {documented}"
        else:
            assert documented == actual, f"APP_{name.upper()}: README {documented}, code {actual}"
        checked += 1
    rows = [line for line in README.read_text().splitlines() if line.startswith("| `APP_")]
    if not rows:
        pytest.skip("the README has no settings table")
    assert checked, f"none of the README's {len(rows)} settings rows was read"
