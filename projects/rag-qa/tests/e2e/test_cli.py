"""The command line: model preparation, folder ingestion and the one-command demo."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from rag_qa.cli import main
from tests.conftest import CORPUS
from tests.live_server import free_port


def test_prepare_model_is_a_no_op_once_done(
    model_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    started = time.perf_counter()
    assert main(["prepare-model", "--output", str(model_dir)]) == 0
    assert time.perf_counter() - started < 5, "an existing model should not be converted again"
    assert f"model ready in {model_dir}" in capsys.readouterr().out


def test_ingest_a_folder_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "docs"
    (folder / "nested").mkdir(parents=True)
    for name in ("rainbow-primer.txt", "recycling-rules.html"):
        (folder / name).write_bytes((CORPUS / name).read_bytes())
    (folder / "nested" / "notes.md").write_text("# Notes\n\nThe ferry leaves at 7:40.\n")
    (folder / "nested" / "empty.md").write_text("")
    (folder / "photo.jpg").write_bytes(b"\xff\xd8")  # not a supported type: not offered
    monkeypatch.setenv("APP_LANCEDB_PATH", str(tmp_path / "store"))
    monkeypatch.setenv("APP_DEVICE", os.environ.get("TEST_DEVICE", "cpu"))

    assert main(["ingest", str(folder)]) == 1  # one file was refused
    out, err = capsys.readouterr()
    assert "3 documents ingested" in out
    assert "1 refused" in out
    assert "empty.md: empty_document" in err

    (folder / "nested" / "empty.md").unlink()
    assert main(["ingest", str(folder)]) == 0
    out = capsys.readouterr().out
    assert "0 documents ingested (0 chunks" in out
    assert "3 already stored" in out


def test_demo_ingests_the_corpus_and_answers_once(
    model_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("APP_MODEL_PATH", str(model_dir))
    monkeypatch.setenv("APP_LANCEDB_PATH", str(tmp_path / "store"))
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "handbook.md").write_bytes((CORPUS / "employee-handbook.md").read_bytes())
    port = str(free_port())
    assert main(["demo", "--once", "--port", port, "--corpus", str(corpus)]) == 0
    out = capsys.readouterr().out
    assert f"API: http://127.0.0.1:{port}/docs" in out
