"""Decoding with PyAV, and sampling that decodes no more than it must.

The demuxer reads a video a group of pictures (GOP: a keyframe and the frames that depend
on it) at a time, which costs almost nothing next to decoding. Only then is it decided
what to decode:

- `fixed` with `align="exact"`: the first frame at or after each target time (one every
  `interval_s` from the start); a GOP holding no target is never decoded, and decoding a
  GOP stops once its last target is reached.
- `fixed` with `align="keyframe"`: for each target time, the last keyframe at or before it;
  only keyframes are decoded, so one frame is decoded per frame analysed, whatever the GOP
  (targets that share a keyframe share its frame).
- `keyframes`: every keyframe, and nothing else decoded.
- `scene`: every frame is decoded, and one is analysed when it differs from the last one
  analysed by more than `scene_threshold` (mean absolute difference of small grey
  thumbnails, 0 to 1); the first frame always is.

A frame's index is its place in presentation order, counted from the demuxed packets, so it
is right for variable frame rate and for GOPs that were never decoded.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
import numpy as np

SamplingMode = Literal["fixed", "keyframes", "scene"]
Alignment = Literal["exact", "keyframe"]
PixelFormat = Literal["gray", "rgb24"]
SCENE_THUMBNAIL = 32  # pixels a side of the thumbnails scene detection compares
_EPSILON = 1e-6  # seconds: timestamps are rationals made floats


class UnreadableVideo(Exception):
    """The file is not a video this decoder can read: empty, corrupt, or no video stream."""


@dataclass(frozen=True)
class Sampling:
    mode: SamplingMode = "fixed"
    interval_s: float = 1.0
    align: Alignment = "exact"
    scene_threshold: float = 0.12
    max_frames: int | None = None  # stop after this many analysed frames


@dataclass(frozen=True)
class FrameFormat:
    """What the classifier takes: every analysed frame is scaled to this by the decoder."""

    width: int
    height: int
    pixel_format: PixelFormat = "gray"


@dataclass(frozen=True)
class Frame:
    index: int  # in presentation order, from 0
    timestamp_s: float  # from the start of the stream
    pixels: np.ndarray  # (height, width) uint8 grey, or (height, width, 3) RGB


@dataclass
class DecodeStats:
    packets: int = 0  # demuxed
    decoded: int = 0  # frames out of the decoder
    analysed: int = 0  # frames handed on
    duration_s: float | None = None  # as the container states it


def probe_duration(path: Path) -> float | None:
    """The video stream's duration in seconds, as the container states it (None if not)."""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return None
            stream = container.streams.video[0]
            if stream.duration is not None and stream.time_base is not None:
                return float(stream.duration * stream.time_base)
            if container.duration is not None:
                return container.duration / av.time_base
    except (av.FFmpegError, OSError, UnicodeDecodeError):
        return None
    return None


class VideoReader:
    """Yields the sampled frames of one video, scaled to `frame_format`; `stats` counts
    what it took."""

    def __init__(
        self, path: Path, sampling: Sampling, frame_format: FrameFormat, *, threads: int = 1
    ) -> None:
        self.path = path
        self.sampling = sampling
        self.format = frame_format
        self.threads = threads
        self.stats = DecodeStats()
        self._indices: dict[int, int] = {}  # pts of a demuxed packet -> presentation index
        self._next_target = 0.0  # seconds from the start of the stream
        self._last_thumbnail: np.ndarray | None = None
        self._origin = 0.0
        self._time_base = 0.0

    def frames(self) -> Iterator[Frame]:
        if self.path.stat().st_size == 0:
            raise UnreadableVideo("the file is empty")
        try:
            container = av.open(str(self.path))
        except (av.FFmpegError, UnicodeDecodeError) as exc:
            raise UnreadableVideo(f"cannot open it as a video: {exc}") from exc
        with container:
            if not container.streams.video:
                raise UnreadableVideo("it has no video stream")
            stream = container.streams.video[0]
            if stream.time_base is None:
                raise UnreadableVideo("its video stream has no time base")
            stream.thread_count = self.threads
            stream.thread_type = "FRAME" if self.threads > 1 else "SLICE"
            self._time_base = float(stream.time_base)
            self._origin = (stream.start_time or 0) * self._time_base
            self.stats.duration_s = probe_duration(self.path)
            try:
                yield from self._sample(container, stream)
            except av.FFmpegError as exc:
                raise UnreadableVideo(f"decoding failed: {exc}") from exc

    # What to decode, a GOP at a time.

    def _sample(
        self, container: av.container.InputContainer, stream: av.VideoStream
    ) -> Iterator[Frame]:
        sampling = self.sampling
        keyframes_only = sampling.mode == "keyframes" or (
            sampling.mode == "fixed" and sampling.align == "keyframe"
        )
        if keyframes_only:
            stream.codec_context.skip_frame = "NONKEY"
        decoder = stream.codec_context
        # A GOP is decided once the next one is demuxed: in an open GOP (HEVC's CRA, say) the
        # frames shown just before a keyframe come after it in the stream and are decoded
        # from the GOP before, which must then be decoded whole.
        held: tuple[list[av.Packet], list[float], float | None] | None = None
        decoded_until = -math.inf  # the latest frame time of the GOPs before the held one
        last: list[tuple[list[av.Packet] | None, float | None]] = [(None, None)]
        for gop, next_key in itertools.chain(self._gops(container, stream), last):
            leading_target = False
            if gop is not None:
                times = sorted(self._seconds(p.pts) for p in gop)  # type: ignore[arg-type]
                key = self._seconds(gop[0].pts)  # type: ignore[arg-type]
                leading = [t for t in times if t < key - _EPSILON]
                if held is not None and leading:
                    leading_target = self._target_in(held[1][-1], leading[-1])
            if held is not None:
                packets, held_times, held_next = held
                chosen, whole = self._choose(
                    packets, held_times, held_next, decoded_until, keyframes_only, leading_target
                )
                decoded_until = max(decoded_until, held_times[-1])
                for packet in chosen:
                    for frame in decoder.decode(packet):
                        if (picked := self._take(frame)) is not None:
                            yield picked
                            if self._enough():
                                return
                    served = self._origin + self._next_target > held_times[-1] + _EPSILON
                    if not whole and served:
                        break  # every target in this GOP is served: decode no more of it
            held = (gop, times, next_key) if gop is not None else None
        for frame in decoder.decode(None):
            if (picked := self._take(frame)) is not None:
                yield picked
                if self._enough():
                    return

    def _choose(
        self,
        gop: list[av.Packet],
        times: list[float],
        next_key: float | None,
        decoded_until: float,
        keyframes_only: bool,
        leading_target: bool,
    ) -> tuple[list[av.Packet], bool]:
        """The packets of a GOP to decode, and whether all of them must be (no stopping
        once its own targets are served)."""
        mode = self.sampling.mode
        if mode == "scene":
            return gop, True
        if keyframes_only:
            key = self._seconds(gop[0].pts)  # type: ignore[arg-type]
            end = next_key if next_key is not None else math.inf
            if mode == "keyframes" or self._target_in(key - _EPSILON, end - _EPSILON):
                return gop[:1], True
            return [], True
        if leading_target:
            return gop, True
        return (gop if self._target_in(decoded_until, times[-1]) else []), False

    def _gops(
        self, container: av.container.InputContainer, stream: av.VideoStream
    ) -> Iterator[tuple[list[av.Packet], float | None]]:
        """The stream's GOPs in decode order, each with the next keyframe's time (None for
        the last), indexing every packet's presentation place as it goes."""
        gop: list[av.Packet] = []
        seen = 0
        for packet in container.demux(stream):
            if packet.pts is None or packet.size == 0:
                continue  # the demuxer's end marker, or a packet with no time to place it
            self.stats.packets += 1
            if packet.is_keyframe and gop:
                seen = self._index(gop, seen)
                yield gop, self._seconds(packet.pts)
                gop = []
            gop.append(packet)
        if gop:
            self._index(gop, seen)
            yield gop, None

    def _index(self, gop: list[av.Packet], seen: int) -> int:
        for offset, pts in enumerate(sorted(p.pts for p in gop)):  # type: ignore[type-var]
            self._indices[pts] = seen + offset  # type: ignore[index]
        if len(self._indices) > 8192:  # frames out of the decoder are long past the oldest
            for pts in sorted(self._indices)[:4096]:
                del self._indices[pts]
        return seen + len(gop)

    def _target_in(self, after: float, until: float) -> bool:
        """Whether one of the target times (0, interval, 2 interval, ...) lies in
        (after, until], in the stream's own seconds."""
        interval = self.sampling.interval_s
        since = after - self._origin
        k = 0 if since < 0 else math.floor(since / interval + _EPSILON) + 1
        return self._origin + k * interval <= until + _EPSILON

    # Which decoded frames are analysed.

    def _take(self, frame: av.VideoFrame) -> Frame | None:
        self.stats.decoded += 1
        if frame.pts is None:
            return None
        seconds = self._seconds(frame.pts) - self._origin
        sampling = self.sampling
        if sampling.mode == "fixed":
            if sampling.align == "exact" and seconds + _EPSILON < self._next_target:
                return None
            self._next_target = (math.floor(seconds / sampling.interval_s + _EPSILON) + 1) * (
                sampling.interval_s
            )
        elif sampling.mode == "scene":
            thumbnail = frame.reformat(
                width=SCENE_THUMBNAIL, height=SCENE_THUMBNAIL, format="gray", threads=1
            ).to_ndarray()
            previous, self._last_thumbnail = self._last_thumbnail, thumbnail
            if previous is not None:
                change = float(np.abs(thumbnail.astype(np.int16) - previous).mean()) / 255
                if change <= sampling.scene_threshold:
                    self._last_thumbnail = previous  # compare with the last frame analysed
                    return None
        pixels = frame.reformat(
            width=self.format.width,
            height=self.format.height,
            format=self.format.pixel_format,
            interpolation="AREA",
            threads=1,
        ).to_ndarray()
        self.stats.analysed += 1
        return Frame(self._indices.get(frame.pts, -1), round(seconds, 6), pixels)

    def _enough(self) -> bool:
        limit = self.sampling.max_frames
        return limit is not None and self.stats.analysed >= limit

    def _seconds(self, pts: int) -> float:
        return pts * self._time_base
