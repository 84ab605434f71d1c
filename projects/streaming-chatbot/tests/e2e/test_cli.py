"""The command line: model preparation and the one-command demo."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from streaming_chatbot.cli import main
from tests.live_server import free_port


def test_prepare_model_is_a_no_op_once_done(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.perf_counter()
    assert main(["prepare-model", "--output", str(model_dir)]) == 0
    assert time.perf_counter() - started < 5, "an existing model should not be converted again"
    assert f"model ready in {model_dir}" in capsys.readouterr().out
    assert (model_dir / "model.safetensors").is_file()
    assert (model_dir / "tokenizer.json").is_file()


def test_demo_serves_and_answers_once(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APP_MODEL_PATH", str(model_dir))
    assert main(["demo", "--once", "--port", str(free_port())]) == 0
    out = capsys.readouterr().out
    assert "chat page: http://127.0.0.1:" in out
    assert "Paris" in out
