"""The members file: what it accepts, and errors that name the member and field at fault."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from ensemble.config import ConfigError, load_ensemble

BASE = {
    "labels": ["a", "b"],
    "input": {"size": 4, "min": 0, "max": 1},
    "members": [
        {"name": "first", "runtime": "torch", "path": "first.pt", "required": True},
        {
            "name": "second",
            "runtime": "onnxruntime",
            "path": "models/second.onnx",
            "hedge_after_ms": 20,
        },
    ],
}


def write(tmp_path: Path, document: object) -> Path:
    """The members file in `tmp_path`, beside the (empty) model files BASE names."""
    (tmp_path / "models").mkdir(exist_ok=True)
    for name in ("first.pt", "models/second.onnx"):
        (tmp_path / name).touch()
    path = tmp_path / "members.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def with_member(index: int, **changes: object) -> dict[str, object]:
    members = [dict(m) for m in BASE["members"]]  # type: ignore[attr-defined]
    members[index].update(changes)
    return {**BASE, "members": members}


def test_a_valid_file_loads_with_paths_relative_to_it(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.pt"
    elsewhere.touch()
    document = {**with_member(1, path=str(elsewhere)), "stacker": "stacker.json"}
    spec = load_ensemble(write(tmp_path, document))
    first, second = spec.members
    assert first.path == tmp_path / "first.pt"
    assert second.path == elsewhere
    assert spec.stacker == tmp_path / "stacker.json"
    assert first.required
    assert not second.required
    assert second.hedge_after_ms == 20
    assert first.weight == 1.0
    assert first.deadline_s == 0.5
    assert spec.deadline_s == 0.5


def test_a_triton_member_names_its_model_and_no_file(tmp_path: Path) -> None:
    spec = load_ensemble(write(tmp_path, with_member(1, runtime="triton", path=None, model="mlp")))
    assert spec.members[1].runtime == "triton"
    assert spec.members[1].model == "mlp"
    assert spec.members[1].path is None


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (with_member(1, runtime="tensorflow"), "members[1] ('second').runtime"),
        (with_member(0, deadline_ms=0), "members[0] ('first').deadline_ms"),
        (with_member(0, weight=-1), "members[0] ('first').weight"),
        (with_member(1, hedge_after_ms=600), "could never answer"),
        (with_member(0, path=None), "needs a path"),
        (with_member(1, path="absent.onnx"), "members[1] ('second').path"),
        (with_member(0, runtime="python", path=None), "needs factory"),
        (with_member(1, runtime="triton", path=None), "needs model"),
        (with_member(1, runtime="triton", path=None, model="a b"), "members[1] ('second').model"),
        (with_member(0, colour="red"), "members[0] ('first').colour"),
        (with_member(1, name="first"), "repeated: first"),
        (with_member(0, name="Bad Name"), "members[0] ('Bad Name').name"),
        ({**BASE, "labels": ["a", "a"]}, "repeated: a"),
        ({**BASE, "members": []}, "members"),
        ({**BASE, "input": {"size": 4, "min": 2, "max": 1}}, "above max"),
        ({"labels": ["a", "b"]}, "input"),
        ([1, 2], "the file"),
    ],
)
def test_a_bad_file_is_refused_naming_what_is_wrong(
    tmp_path: Path, document: object, message: str
) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_ensemble(write(tmp_path, document))


def test_a_missing_or_unreadable_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_ensemble(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("members: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_ensemble(bad)
