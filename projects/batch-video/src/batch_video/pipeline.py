"""One video through the classifier: decode and inference overlapped, memory bounded.

A decoding thread fills a queue of at most `decode_ahead` frames (each already scaled to
the model's input by the decoder, a few bytes to a few kilobytes); the caller's thread
takes them in batches of up to `batch_size` and runs the model. Decoding never runs more
than `decode_ahead` frames ahead, whatever the video's length, so memory stays flat.
Cancelling (`should_stop` returning true) is checked between batches.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from batch_video.classifier import FrameClassifier
from batch_video.video import DecodeStats, Frame, Sampling, VideoReader

_END = object()


class Cancelled(Exception):
    """The job or the video was cancelled while it was being analysed."""


@dataclass(frozen=True)
class FrameResult:
    index: int
    timestamp_s: float
    labels: tuple[str, ...]  # top-k, best first
    scores: tuple[float, ...]


@dataclass
class VideoAnalysis:
    frames: list[FrameResult] = field(default_factory=list)
    stats: DecodeStats = field(default_factory=DecodeStats)
    decode_s: float = 0.0  # time the decoding thread spent decoding
    inference_s: float = 0.0  # time spent in the model
    wall_s: float = 0.0
    largest_queue: int = 0


@dataclass(frozen=True)
class PipelineOptions:
    batch_size: int = 32
    decode_ahead: int = 64  # frames the decoder may run ahead of inference
    top_k: int = 3
    decode_threads: int = 1


def analyse_video(
    path: Path,
    classifier: FrameClassifier,
    sampling: Sampling,
    options: PipelineOptions,
    *,
    should_stop: Callable[[], bool] = lambda: False,
    on_progress: Callable[[VideoAnalysis, float], None] | None = None,
) -> VideoAnalysis:
    """Every sampled frame of `path`, classified. Raises UnreadableVideo for a file that is
    not a video it can read, and Cancelled when `should_stop` says so."""
    started = time.perf_counter()
    reader = VideoReader(path, sampling, classifier.manifest.frame, threads=options.decode_threads)
    analysis = VideoAnalysis(stats=reader.stats)
    frames: queue.Queue[object] = queue.Queue(maxsize=options.decode_ahead)
    stop = threading.Event()
    failure: list[BaseException] = []

    def decode() -> None:
        began = time.perf_counter()
        try:
            for frame in reader.frames():
                while not stop.is_set():
                    try:
                        frames.put(frame, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as exc:  # handed to the consumer, which raises it
            failure.append(exc)
        finally:
            analysis.decode_s = time.perf_counter() - began
            _put_end(frames, stop)

    thread = threading.Thread(target=decode, name=f"decode {path.name}", daemon=True)
    thread.start()
    labels = classifier.manifest.labels
    k = min(options.top_k, len(labels))
    try:
        for batch in _batches(frames, options.batch_size, analysis):
            if should_stop():
                raise Cancelled(f"{path.name} was cancelled")
            began = time.perf_counter()
            probabilities = classifier.probabilities(np.stack([f.pixels for f in batch]))
            analysis.inference_s += time.perf_counter() - began
            best = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
            for frame, order, row in zip(batch, best, probabilities, strict=True):
                analysis.frames.append(
                    FrameResult(
                        frame.index,
                        frame.timestamp_s,
                        tuple(labels[i] for i in order),
                        tuple(round(float(row[i]), 6) for i in order),
                    )
                )
            if on_progress is not None:
                on_progress(analysis, batch[-1].timestamp_s)
        if failure:
            raise failure[0]
    finally:
        stop.set()
        thread.join()
        analysis.wall_s = time.perf_counter() - started
    return analysis


def _batches(
    frames: queue.Queue[object], size: int, analysis: VideoAnalysis
) -> Iterator[list[Frame]]:
    batch: list[Frame] = []
    while True:
        analysis.largest_queue = max(analysis.largest_queue, frames.qsize())
        item = frames.get() if not batch else _get_nowait(frames)
        if item is None:  # nothing ready: run what there is rather than wait
            yield batch
            batch = []
            continue
        if item is _END:
            if batch:
                yield batch
            return
        batch.append(item)  # type: ignore[arg-type]
        if len(batch) >= size:
            yield batch
            batch = []


def _get_nowait(frames: queue.Queue[object]) -> object | None:
    try:
        return frames.get_nowait()
    except queue.Empty:
        return None


def _put_end(frames: queue.Queue[object], stop: threading.Event) -> None:
    while True:
        try:
            frames.put(_END, timeout=0.1)
            return
        except queue.Full:
            if stop.is_set():
                return
