"""Decoding and sampling on videos made here: every codec and container PyAV writes, long
GOPs, variable frame rate, and files that are not videos."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from batch_video.classifier import load_classifier
from batch_video.demo_videos import CODECS, Script, encoder_available, write_corrupt, write_video
from batch_video.pipeline import PipelineOptions, analyse_video
from batch_video.training import TrainingReport
from batch_video.video import FrameFormat, Sampling, UnreadableVideo, VideoReader

FORMAT = FrameFormat(8, 8)
SCRIPT = Script((3, 1, 4, 1, 5, 9), 2.0)
MATRIX = [(codec, container) for codec, containers in CODECS.items() for container in containers]


def _frames(path: Path, sampling: Sampling) -> tuple[list[tuple[int, float]], VideoReader]:
    reader = VideoReader(path, sampling, FORMAT)
    return [(f.index, f.timestamp_s) for f in reader.frames()], reader


@pytest.fixture(scope="module")
def long_gop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 s at 25 frames/s with a keyframe every 10 s (250 frames)."""
    script = Script((3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8), 2.0)
    return write_video(tmp_path_factory.mktemp("gop") / "long-gop.mp4", script, gop=250)


@pytest.mark.parametrize(("codec", "container"), MATRIX, ids=[f"{c}-{k}" for c, k in MATRIX])
def test_every_codec_and_container_reads_the_right_digit_at_each_time(
    codec: str, container: str, demo_model: TrainingReport, tmp_path: Path
) -> None:
    if not encoder_available(codec):
        pytest.skip(f"this PyAV has no {codec} encoder")
    path = write_video(tmp_path / f"digits.{container}", SCRIPT, codec=codec, gop=12)
    classifier = load_classifier(demo_model.output_dir, "onnxruntime")
    analysis = analyse_video(path, classifier, Sampling(interval_s=1.0), PipelineOptions())
    assert [f.timestamp_s for f in analysis.frames] == pytest.approx(
        [float(t) for t in range(12)], abs=0.05
    )
    labels = [f.labels[0] for f in analysis.frames]
    expected = [str(SCRIPT.digit_at(f.timestamp_s)) for f in analysis.frames]
    assert labels == expected


def test_exact_sampling_takes_the_first_frame_at_or_after_each_time(long_gop: Path) -> None:
    frames, reader = _frames(long_gop, Sampling(interval_s=1.0))
    assert frames == [(25 * t, float(t)) for t in range(24)]
    # A target 1 s into a 10 s GOP means decoding that GOP up to it: exact time costs.
    assert reader.stats.decoded > 5 * reader.stats.analysed


def test_keyframe_aligned_sampling_decodes_one_frame_per_frame_analysed(long_gop: Path) -> None:
    frames, reader = _frames(long_gop, Sampling(interval_s=1.0, align="keyframe"))
    assert frames == [(0, 0.0), (250, 10.0), (500, 20.0)]
    assert reader.stats.decoded == reader.stats.analysed == 3
    assert reader.stats.packets == 600  # every packet demuxed, few decoded


def test_keyframes_mode_and_a_frame_limit(long_gop: Path) -> None:
    frames, reader = _frames(long_gop, Sampling(mode="keyframes"))
    assert [t for _, t in frames] == [0.0, 10.0, 20.0]
    limited, reader = _frames(long_gop, Sampling(interval_s=0.5, max_frames=4))
    assert [t for _, t in limited] == [0.0, 0.52, 1.0, 1.52]
    assert reader.stats.decoded < 60  # it stopped decoding once it had enough


def test_a_gop_with_no_target_is_not_decoded(long_gop: Path) -> None:
    frames, reader = _frames(long_gop, Sampling(interval_s=15.0))
    assert frames == [(0, 0.0), (375, 15.0)]
    # The first frame (GOP 1), then GOP 2 up to 15 s; GOP 3 (20-24 s) is never decoded.
    assert reader.stats.decoded < 140


def test_scene_sampling_analyses_each_change_of_digit(tmp_path: Path) -> None:
    path = write_video(tmp_path / "scenes.mp4", SCRIPT)
    frames, reader = _frames(path, Sampling(mode="scene"))
    assert [t for _, t in frames] == [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    assert reader.stats.decoded == 300


def test_variable_frame_rate_indices_follow_presentation_order(tmp_path: Path) -> None:
    path = write_video(tmp_path / "vfr.mkv", SCRIPT, variable_rate=True)
    everything, _ = _frames(path, Sampling(interval_s=0.001))
    indices = [index for index, _ in everything]
    assert indices == list(range(len(indices)))
    times = [t for _, t in everything]
    gaps = {round(b - a, 2) for a, b in itertools.pairwise(times)}
    assert len(gaps) >= 3, "the frames are not spaced unevenly"
    sampled, _ = _frames(path, Sampling(interval_s=1.0))
    for index, seconds in sampled:
        assert times[index] == seconds


def test_files_that_are_not_videos_are_unreadable(tmp_path: Path) -> None:
    good = write_video(tmp_path / "good.mp4", SCRIPT)
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "text.mp4").write_text("not a video at all")
    write_corrupt(tmp_path / "corrupt.mp4", good)
    for name, reason in (
        ("empty.mp4", "empty"),
        ("text.mp4", "cannot open"),
        ("corrupt.mp4", "cannot open"),
    ):
        with pytest.raises(UnreadableVideo, match=reason):
            list(VideoReader(tmp_path / name, Sampling(), FORMAT).frames())
