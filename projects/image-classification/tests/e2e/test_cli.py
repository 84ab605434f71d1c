"""The command line's demo: train, serve and classify a sample, as the README shows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from image_classification.cli import main
from tests.live_server import free_port


def test_demo_trains_serves_and_classifies_a_sample(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["demo", "--once", "--port", str(free_port())]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("{")
    result = json.loads("\n".join(lines[start : lines.index("}", start) + 1]))
    assert result["predictions"][0]["filename"] == "digit-7.png"
    assert result["predictions"][0]["labels"][0]["label"] == "7"
    assert (tmp_path / "models" / "demo" / "model.pt").is_file()


def test_demo_with_a_broken_checkpoint_says_why_and_exits_1(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    checkpoint = tmp_path / "models" / "demo" / "model.pt"
    checkpoint.parent.mkdir(parents=True)
    checkpoint.write_bytes(b"not a checkpoint")
    assert main(["demo", "--once", "--port", str(free_port())]) == 1
    assert "the model failed to load" in capsys.readouterr().err
