"""One video through the classifier: decode and inference overlapped, memory bounded.

A decoding thread gathers frames (each already scaled to the model's input by the decoder,
a few bytes to a few kilobytes) into batches of `batch_size`, or fewer once `batch_wait_s`
has passed since a batch's first frame, and hands each batch over a queue; the caller's
thread runs the model on them. Handing over whole batches wakes the model's thread once a
batch rather than once a frame: a frame at a time, the two threads spent more time passing
the interpreter lock than decoding. The queue holds `decode_ahead // batch_size` batches
(at least one), so decoding never runs more than about `decode_ahead` frames ahead,
whatever the video's length, and memory stays flat. Cancelling (`should_stop` returning
true) is checked between batches.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from batch_video.classifier import FrameClassifier
from batch_video.video import DecodeStats, Frame, Sampling, VideoReader


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
    largest_queue: int = 0  # batches waiting for the model, at most


@dataclass(frozen=True, kw_only=True)
class PipelineOptions:
    batch_size: int = 32
    decode_ahead: int = 64  # frames the decoder may run ahead of inference
    batch_wait_s: float = 0.05  # a batch goes to the model at most this long after its first frame
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
    batches: queue.Queue[list[Frame] | None] = queue.Queue(
        maxsize=max(1, options.decode_ahead // options.batch_size)
    )
    stop = threading.Event()
    failure: list[BaseException] = []

    def decode() -> None:
        began = time.perf_counter()
        batch: list[Frame] = []
        since = 0.0
        try:
            for frame in reader.frames():
                if not batch:
                    since = time.perf_counter()
                batch.append(frame)
                full = len(batch) >= options.batch_size
                if full or time.perf_counter() - since >= options.batch_wait_s:
                    if not _put(batches, batch, stop):
                        return
                    batch = []
            if batch and not _put(batches, batch, stop):
                return
        except BaseException as exc:  # handed to the consumer, which raises it
            failure.append(exc)
        finally:
            analysis.decode_s = time.perf_counter() - began
            _put(batches, None, stop)

    thread = threading.Thread(target=decode, name=f"decode {path.name}", daemon=True)
    thread.start()
    labels = classifier.manifest.labels
    k = min(options.top_k, len(labels))
    try:
        while (batch := batches.get()) is not None:
            analysis.largest_queue = max(analysis.largest_queue, batches.qsize() + 1)
            if should_stop():
                raise Cancelled(f"{path.name} was cancelled")
            began = time.perf_counter()
            probabilities = classifier.probabilities(np.stack([f.pixels for f in batch]))
            analysis.inference_s += time.perf_counter() - began
            best = np.argsort(-probabilities, axis=1, kind="stable")[:, :k]
            scores = np.round(np.take_along_axis(probabilities, best, axis=1), 6).tolist()
            for frame, order, row in zip(batch, best.tolist(), scores, strict=True):
                analysis.frames.append(
                    FrameResult(
                        frame.index,
                        frame.timestamp_s,
                        tuple(labels[i] for i in order),
                        tuple(row),
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


def _put(
    batches: queue.Queue[list[Frame] | None], item: list[Frame] | None, stop: threading.Event
) -> bool:
    """Waits for room in the queue; False if the consumer stopped meanwhile."""
    while not stop.is_set():
        try:
            batches.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False
