"""Decoding under admission: reserved before it starts, on a capped pool, inside the deadline.

A request's images are opened first (headers only), so what their decoding will take is
known before a pixel is decoded: that much memory is reserved from the service's budget,
and the request is refused at once (503 `overloaded`) when the budget cannot hold it or
when the decoding already queued would not finish within the request's deadline. The
images then decode one after another on a pool of `decode_workers` threads, so at most
that many full-size images exist at once whatever the burst; a request past its deadline
gets its 504 while a decode that already started finishes and frees its reservation.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

from image_classification.admission import MemoryBudget
from image_classification.errors import InferenceTimeout, Overloaded
from image_classification.preprocessing import Preprocessing, decoded_bytes, open_image, preprocess

Upload = tuple[str | None, bytes]

# Weight of the newest decode in the measured decoding rate, and the fewest pixels a decode
# must have to count: below it, per-image overhead rather than pixels sets the time.
_RATE_SMOOTHING = 0.2
_RATE_MIN_PIXELS = 1_000_000


class Decoder:
    """The decoding pool and what it has queued, in pixels, against its measured rate."""

    def __init__(self, workers: int, *, retry_after_s: int = 1) -> None:
        self.workers = workers
        self.retry_after_s = retry_after_s
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="decode")
        self._lock = threading.Lock()
        self.queued_pixels = 0
        self.pixels_per_s: float | None = None  # per worker, once something was decoded

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    async def preprocess(
        self,
        uploads: list[Upload],
        spec: Preprocessing,
        *,
        max_pixels: int,
        budget: MemoryBudget,
        deadline: float,
    ) -> list[np.ndarray]:
        """Each upload as the model's input array, or InvalidInput, Overloaded (503) or
        InferenceTimeout (504) once `deadline` (a `time.monotonic()` value) has passed."""
        names = [f"image {i}" + (f" ({n})" if n else "") for i, (n, _) in enumerate(uploads)]
        opened = [
            open_image(data, spec, max_pixels=max_pixels, name=names[i])
            for i, (_, data) in enumerate(uploads)
        ]
        pixels = sum(image.size[0] * image.size[1] for image in opened)
        # One image at a time: the request's peak is its largest image, not their sum.
        peak = max(decoded_bytes(image, spec) for image in opened)
        remaining = deadline - time.monotonic()
        self._admit(pixels, remaining)
        reservation = budget.reserve(peak, f"decoding {len(uploads)} image(s)")
        with self._lock:
            self.queued_pixels += pixels
        try:
            future = self._pool.submit(self._decode_all, uploads, names, spec, max_pixels, pixels)
        except BaseException:
            self._done(pixels, reservation.release)
            raise

        def finished(_: Future[Any]) -> None:
            self._done(pixels, reservation.release)

        future.add_done_callback(finished)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), remaining)
        except TimeoutError:
            raise InferenceTimeout(
                f"the images were not decoded within the request's {remaining:.3g} s left"
            ) from None

    def _admit(self, pixels: int, remaining: float) -> None:
        rate = self.pixels_per_s
        if remaining <= 0:
            raise InferenceTimeout("the request's deadline passed before decoding")
        if rate is None:
            return
        with self._lock:
            queued = self.queued_pixels
        wait = (queued / self.workers + pixels) / rate
        # A request that would be late even alone is tried: retrying it would not help.
        if queued and wait > remaining:
            raise Overloaded(
                f"decoding already queued would take {wait:.2f} s, past this request's "
                f"{remaining:.2f} s deadline; retry later",
                retry_after_s=self.retry_after_s,
            )

    def _decode_all(
        self,
        uploads: list[Upload],
        names: list[str],
        spec: Preprocessing,
        max_pixels: int,
        pixels: int,
    ) -> list[np.ndarray]:
        started = time.perf_counter()
        arrays = [
            preprocess(data, spec, max_pixels=max_pixels, name=names[i])
            for i, (_, data) in enumerate(uploads)
        ]
        if pixels < _RATE_MIN_PIXELS:
            return arrays
        measured = pixels / max(time.perf_counter() - started, 1e-6)
        with self._lock:
            previous = self.pixels_per_s
            self.pixels_per_s = (
                measured if previous is None else previous + _RATE_SMOOTHING * (measured - previous)
            )
        return arrays

    def _done(self, pixels: int, release: Callable[[], None]) -> None:
        with self._lock:
            self.queued_pixels -= pixels
        release()
