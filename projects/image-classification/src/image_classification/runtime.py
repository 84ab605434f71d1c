"""The model runtime: loads the classifier, warms it up, batches."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import numpy as np
from opentelemetry import trace

from image_classification.admission import PeakRSS
from image_classification.batching import Admission, BatchFn, MicroBatcher
from image_classification.decoding import Decoder
from image_classification.errors import NotReady
from image_classification.model import ModelMetadata
from image_classification.observability import Metrics
from image_classification.settings import Settings
from image_classification.torch_backend import TorchClassifier

logger = logging.getLogger(__name__)

Prediction = list[tuple[str, float]]


class ClassifierRuntime:
    """Owns the model and its micro-batcher for the life of the app."""

    def __init__(self, settings: Settings, metrics: Metrics, tracer: trace.Tracer) -> None:
        self.settings = settings
        self.metrics = metrics
        self.tracer = tracer
        self.metadata: ModelMetadata | None = None
        self.device = "unloaded"
        self._batcher: MicroBatcher[np.ndarray, np.ndarray] | None = None
        self.decoder = Decoder(settings.decode_workers, retry_after_s=settings.retry_after_s)
        self._ready = False
        self._failure: str | None = None
        # What batches in flight take beyond their inputs, as the warm-up measures it.
        self.working_bytes = 0

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def failure(self) -> str | None:
        return self._failure

    @property
    def backend(self) -> str:
        return "torch"

    async def start(self) -> None:
        started = time.perf_counter()
        try:
            infer, concurrent_batches = await self._load()
            await self._warm_up(infer, concurrent_batches)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failure = f"{type(exc).__name__}: {exc}"
            raise
        self._batcher = MicroBatcher(
            infer,
            max_batch_size=self.settings.max_batch_size,
            max_wait_s=self.settings.max_wait_ms / 1000,
            max_queue_size=self.settings.max_queue_size,
            metrics=self.metrics,
            retry_after_s=self.settings.retry_after_s,
            max_concurrent_batches=concurrent_batches,
            tracer=self.tracer,
        )
        await self._batcher.start()
        elapsed = time.perf_counter() - started
        self.metrics.model_load_seconds.set(elapsed)
        self.metrics.model_ready.set(1)
        self._ready = True
        logger.info("model ready", extra={"load_seconds": round(elapsed, 3), "device": self.device})

    async def _load(self) -> tuple[BatchFn[np.ndarray, np.ndarray], int]:
        classifier = await asyncio.to_thread(TorchClassifier.load, self.settings)
        self.metadata = classifier.metadata
        self.device = str(classifier.device)
        return classifier.predict, self.settings.inference_workers

    async def _warm_up(self, infer: BatchFn[np.ndarray, np.ndarray], concurrent: int) -> None:
        """Runs the smallest and largest batch once each, so first requests pay no set-up
        cost, and measures what the largest takes while it runs: `concurrent` of them at
        once is the model's working memory."""
        assert self.metadata is not None
        shape = self.metadata.preprocessing.shape
        largest = self.settings.max_batch_size

        async def run(size: int) -> None:
            batch = [np.zeros(shape, dtype=np.float32)] * size
            if asyncio.iscoroutinefunction(infer):
                await infer(batch)
            else:
                await asyncio.to_thread(infer, batch)

        for _ in range(self.settings.warmup_iterations):
            if largest > 1:
                await run(1)
            with PeakRSS() as rss:
                await run(largest)
            self.working_bytes = max(self.working_bytes, rss.over_baseline * concurrent)

    async def stop(self) -> None:
        self._ready = False
        self.metrics.model_ready.set(0)
        if self._batcher is not None:
            await self._batcher.stop()
        await asyncio.to_thread(self.decoder.close)

    def loaded_metadata(self) -> ModelMetadata:
        """The model's metadata, or NotReady (503) while it is still loading."""
        if not self._ready or self.metadata is None:
            raise NotReady("the model is loading", retry_after_s=self.settings.retry_after_s)
        return self.metadata

    def admit(self) -> Admission:
        """A place in the model's queue, taken before the request reads its images; 503 at
        once when the queue is full."""
        if self._batcher is None:
            raise NotReady("the model is not loaded yet", retry_after_s=self.settings.retry_after_s)
        return self._batcher.admit()

    async def classify(
        self,
        images: Sequence[np.ndarray],
        top_k: int,
        *,
        deadline: float,
        admission: Admission | None = None,
    ) -> list[Prediction]:
        """Top-k labels per image, or InferenceTimeout once `deadline` (monotonic) passes."""
        labels = self.loaded_metadata().labels
        assert self._batcher is not None
        probabilities = await self._batcher.submit(images, deadline - time.monotonic(), admission)
        k = min(top_k, len(labels))
        predictions = []
        for row in probabilities:
            best = np.argsort(row)[::-1][:k]
            predictions.append([(labels[i], float(row[i])) for i in best])
            self.metrics.predictions.labels(labels[best[0]]).inc()
        return predictions
