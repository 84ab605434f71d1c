"""Results on disk: each video's rows committed atomically with its manifest, then the
job's whole result.

A video's Parquet file is written beside its final name, synced, and renamed into place;
then its manifest (the commit: what the job's restart trusts) the same way. A file with no
manifest is an unfinished video and is redone. Nothing written depends on timing, so a job
killed and restarted ends byte-identical to one that ran straight through.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa
import pyarrow.parquet as pq

from batch_video.checksums import sha256_of
from batch_video.pipeline import FrameResult

VideoStatus = Literal["done", "failed", "cancelled"]
SCHEMA = pa.schema(
    [
        ("video", pa.string()),
        ("frame_index", pa.int64()),
        ("timestamp_s", pa.float64()),
        ("labels", pa.list_(pa.string())),
        ("scores", pa.list_(pa.float32())),
    ]
)


@dataclass(frozen=True)
class Segment:
    """Consecutive analysed frames with the same top label."""

    label: str
    start_s: float
    end_s: float  # the last such frame's time
    frames: int
    mean_score: float


@dataclass(frozen=True)
class VideoRecord:
    """A video's manifest: what became of it, and its rows' file and digest."""

    index: int
    video: str
    status: VideoStatus
    reason: str | None = None
    rows: int = 0
    parquet: str | None = None  # file name beside the manifest
    sha256: str | None = None
    frames_decoded: int = 0
    frames_analysed: int = 0
    duration_s: float | None = None
    model_version: str | None = None
    segments: tuple[Segment, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> VideoRecord:
        segments = tuple(Segment(**s) for s in raw.pop("segments", ()))
        return cls(**raw, segments=segments)


def segments(frames: Sequence[FrameResult]) -> tuple[Segment, ...]:
    found: list[Segment] = []
    run: list[FrameResult] = []
    for frame in [*frames, None]:
        if run and (frame is None or frame.labels[0] != run[0].labels[0]):
            found.append(
                Segment(
                    label=run[0].labels[0],
                    start_s=run[0].timestamp_s,
                    end_s=run[-1].timestamp_s,
                    frames=len(run),
                    mean_score=round(sum(f.scores[0] for f in run) / len(run), 6),
                )
            )
            run = []
        if frame is not None:
            run.append(frame)
    return tuple(found)


def table(video: str, frames: Sequence[FrameResult]) -> pa.Table:
    return pa.table(
        {
            "video": [video] * len(frames),
            "frame_index": [f.index for f in frames],
            "timestamp_s": [f.timestamp_s for f in frames],
            "labels": [list(f.labels) for f in frames],
            "scores": [list(f.scores) for f in frames],
        },
        schema=SCHEMA,
    )


def commit_video(folder: Path, record: VideoRecord, frames: Sequence[FrameResult]) -> VideoRecord:
    """Writes a video's rows (if it has any) and then its manifest, each atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    if record.status == "done":
        name = f"{record.index:05d}.parquet"
        write_atomically(
            folder / name, lambda path: pq.write_table(table(record.video, frames), path)
        )
        record = _with_rows(record, folder / name, frames)
    write_json(folder / f"{record.index:05d}.json", record.to_json())
    return record


def _with_rows(record: VideoRecord, path: Path, frames: Sequence[FrameResult]) -> VideoRecord:
    return replace(
        record,
        rows=len(frames),
        parquet=path.name,
        sha256=sha256_of(path),
        segments=segments(frames),
    )


def committed(folder: Path, index: int) -> VideoRecord | None:
    """A video's manifest, if it was committed and its rows' file is intact."""
    path = folder / f"{index:05d}.json"
    if not path.is_file():
        return None
    try:
        record = VideoRecord.from_json(json.loads(path.read_text()))
    except (ValueError, TypeError):
        return None
    if record.parquet is not None:
        rows = folder / record.parquet
        if not rows.is_file() or sha256_of(rows) != record.sha256:
            return None
    return record


def combine(folder: Path, records: Iterable[VideoRecord], output: Path) -> Path:
    """The job's rows in video order, as one Parquet file."""
    tables = [
        pq.read_table(folder / r.parquet) for r in records if r.status == "done" and r.parquet
    ]
    whole = pa.concat_tables(tables) if tables else SCHEMA.empty_table()
    write_atomically(output, lambda path: pq.write_table(whole, path))
    return output


def write_json(path: Path, value: object, *, durable: bool = True) -> None:
    text = json.dumps(value, indent=2, sort_keys=True) + "\n"
    write_atomically(path, lambda tmp: tmp.write_text(text), durable=durable)


def write_atomically(path: Path, write: Any, *, durable: bool = True) -> None:
    """`write(tmp)` to a file beside `path`, then renamed over it: a reader sees the old
    file or the new one, never half of one. `durable`: the file and then the folder are
    synced too, so what was committed survives a crash of the machine, not only of the
    process (what is advisory, progress say, skips the cost)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    if durable:
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
    os.replace(tmp, path)
    if durable:
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
