"""The stages of the batch-video suite, each run in worker processes of its own so that
decoding alone, inference alone, the project's engine and a plain loop are measured on the
same cores the same way. Imported from the rendered project's package (its `src` on
sys.path), never from a copy."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np


def _package(name: str) -> Any:
    import importlib

    return importlib.import_module(f"batch_video.{name}")


def warm() -> None:
    """Imports what every stage uses, then holds the worker a moment, so that one warm call
    lands on each worker of a pool."""
    import av  # noqa: F401
    import onnxruntime  # noqa: F401

    for name in ("video", "classifier", "pipeline"):
        _package(name)
    time.sleep(0.3)


def decode_only(path: str, interval_s: float, align: str = "exact") -> dict[str, float]:
    """Every sampled frame of one video, decoded and scaled as the pipeline does, no model."""
    video = _package("video")
    reader = video.VideoReader(
        Path(path), video.Sampling(interval_s=interval_s, align=align), video.FrameFormat(8, 8)
    )
    started = time.perf_counter()
    frames = sum(1 for _ in reader.frames())
    return {
        "frames": frames,
        "decoded": reader.stats.decoded,
        "seconds": time.perf_counter() - started,
    }


def infer_only(model_dir: str, runtime: str, frames: int, batch_size: int) -> dict[str, float]:
    """The classifier alone on `frames` frames of the model's size, in batches."""
    classifier = _package("classifier").load_classifier(Path(model_dir), runtime, threads=1)
    frame = classifier.manifest.frame
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (batch_size, frame.height, frame.width), dtype=np.uint8)
    classifier.probabilities(batch)  # warm
    started = time.perf_counter()
    done = 0
    while done < frames:
        classifier.probabilities(batch)
        done += batch_size
    return {"frames": done, "seconds": time.perf_counter() - started}


def plain_loop(path: str, model_dir: str, interval_s: float) -> dict[str, float]:
    """What a first script does: decode every frame with PyAV's defaults, convert each to
    RGB, pick the sampled ones by time, scale them in numpy, classify one frame at a time."""
    import av

    classifier = _package("classifier").load_classifier(Path(model_dir), "onnxruntime", threads=1)
    started = time.perf_counter()
    analysed = decoded = 0
    next_time = 0.0
    with av.open(path) as container:
        for frame in container.decode(video=0):
            decoded += 1
            rgb = frame.to_ndarray(format="rgb24")
            if frame.time is None or frame.time + 1e-6 < next_time:
                continue
            next_time += interval_s
            grey = rgb.mean(axis=2)
            h, w = grey.shape
            small = grey[: h - h % 8, : w - w % 8].reshape(8, h // 8, 8, w // 8).mean(axis=(1, 3))
            classifier.probabilities(small[None].astype(np.uint8))
            analysed += 1
    return {"frames": analysed, "decoded": decoded, "seconds": time.perf_counter() - started}


def rss_over_a_long_video(path: str, model_dir: str, interval_s: float) -> dict[str, float]:
    """One long video through the project's pipeline in this process, its RSS sampled every
    50 ms: what it holds after the first batches, and the most it held after."""
    pipeline = _package("pipeline")
    video = _package("video")
    classifier = _package("classifier").load_classifier(Path(model_dir), "onnxruntime", threads=1)
    page = os.sysconf("SC_PAGE_SIZE")

    def rss() -> int:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * page

    samples: list[tuple[float, int]] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            samples.append((time.perf_counter(), rss()))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    started = time.perf_counter()
    sampler.start()
    analysis = pipeline.analyse_video(
        Path(path), classifier, video.Sampling(interval_s=interval_s), pipeline.PipelineOptions()
    )
    stop.set()
    sampler.join()
    seconds = time.perf_counter() - started
    settled = [value for at, value in samples if at - started >= min(2.0, seconds * 0.1)]
    first = settled[0] if settled else samples[0][1]
    return {
        "frames": len(analysis.frames),
        "seconds": seconds,
        "rss_after_start_mb": first / 2**20,
        "rss_peak_mb": max(value for _, value in samples) / 2**20,
        "growth_mb": (max(settled or [first]) - first) / 2**20,
        "largest_queue": analysis.largest_queue,
    }
