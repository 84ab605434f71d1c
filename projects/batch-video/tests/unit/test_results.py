"""Committed results: segments, atomic commits, and a tampered file taken as not done."""

from __future__ import annotations

from pathlib import Path

from batch_video.pipeline import FrameResult
from batch_video.results import VideoRecord, commit_video, committed, segments


def _frame(index: int, seconds: float, label: str, score: float = 0.9) -> FrameResult:
    return FrameResult(index, seconds, (label, "x"), (score, 1 - score))


FRAMES = [
    _frame(0, 0.0, "3"),
    _frame(25, 1.0, "3", 0.7),
    _frame(50, 2.0, "1"),
    _frame(75, 3.0, "3"),
]


def test_segments_join_consecutive_frames_of_one_label() -> None:
    found = segments(FRAMES)
    assert [(s.label, s.start_s, s.end_s, s.frames) for s in found] == [
        ("3", 0.0, 1.0, 2),
        ("1", 2.0, 2.0, 1),
        ("3", 3.0, 3.0, 1),
    ]
    assert found[0].mean_score == 0.8
    assert segments([]) == ()


def test_a_commit_is_read_back_and_a_tampered_one_is_not(tmp_path: Path) -> None:
    record = commit_video(tmp_path, VideoRecord(4, "/v/a.mp4", "done"), FRAMES)
    assert record.rows == 4
    assert committed(tmp_path, 4) == record
    assert not list(tmp_path.glob(".*.tmp"))  # nothing half-written is left beside it
    (tmp_path / "00004.parquet").write_bytes(b"truncated")
    assert committed(tmp_path, 4) is None
    assert committed(tmp_path, 5) is None


def test_a_failed_video_commits_its_reason_and_no_rows(tmp_path: Path) -> None:
    record = commit_video(tmp_path, VideoRecord(0, "/v/b.mp4", "failed", reason="empty"), [])
    assert committed(tmp_path, 0) == record
    assert record.parquet is None
    assert not list(tmp_path.glob("*.parquet"))
