"""The members: each a model in its runtime, behind its own micro-batcher and breaker.

A member is called with the request's inputs (one array, shared by every member: each
batcher takes rows of it, and copies them only to stack a batch) and answers class
probabilities, or raises MemberFailure saying why it could not: `deadline` (no answer
within its deadline), `error` (the model raised), `overloaded` (its queue is full) or
`circuit_open` (its breaker refuses calls after failures in a row).

A member with `hedge_after_ms` sends a second call when the first has not answered by
then, and takes whichever answers first: one slow batch (a stalled worker, a noisy
neighbour) then costs the hedge delay, not the deadline. A hedge goes out only while one of
the member's workers is idle (it pays with two or more) and within a budget of a tenth of
its calls, so that under load, when every call is slow, hedging does not double the load.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from opentelemetry import trace

from ensemble.aggregation import softmax
from ensemble.batching import Admission, MicroBatcher
from ensemble.breaker import BreakerState, CircuitBreaker
from ensemble.checksums import sha256_of
from ensemble.config import MemberSpec
from ensemble.errors import InferenceTimeout, Overloaded
from ensemble.observability import Metrics
from ensemble.onnx_model import OnnxModel, resolve_device
from ensemble.settings import Settings

logger = logging.getLogger(__name__)

# At most this share of a member's calls is hedged.
HEDGE_SHARE = 0.1
# Why a member did not answer; the response and the metrics use these words.
REASONS = ("deadline", "error", "overloaded", "circuit_open", "not_loaded")


class Model(Protocol):
    """What a member runs: logits (inputs, classes) for a batch (inputs, features)."""

    def predict(self, batch: np.ndarray) -> np.ndarray: ...


class TorchModel:
    """A TorchScript file: the network and its preprocessing, no Python class needed."""

    def __init__(self, module: torch.jit.ScriptModule, device: torch.device) -> None:
        self.module = module
        self.device = device

    @classmethod
    def load(cls, spec: MemberSpec, settings: Settings) -> TorchModel:
        assert spec.path is not None
        _check_file(spec.path, spec.sha256)
        device = _torch_device(settings.device)
        module = torch.jit.load(str(spec.path), map_location=device).eval()
        return cls(module, device)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            logits = self.module(torch.from_numpy(batch).to(self.device))
        return logits.float().cpu().numpy()


class OnnxRuntimeModel:
    """An ONNX file in its own ONNX Runtime session, `threads` intra-op threads per call."""

    def __init__(self, model: OnnxModel) -> None:
        self.model = model

    @classmethod
    def load(cls, spec: MemberSpec, settings: Settings) -> OnnxRuntimeModel:
        assert spec.path is not None
        model = OnnxModel.load(
            spec.path,
            device=resolve_device(settings.device),
            threads=spec.threads,
            expected_sha256=spec.sha256,
        )
        return cls(model)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        return self.model.run(batch)


def load_model(spec: MemberSpec, settings: Settings, features: int, classes: int) -> Model:
    """The member's model, checked where its runtime can say what it takes and answers
    (a TorchScript file cannot; its warm-up checks it)."""
    if spec.runtime == "torch":
        return TorchModel.load(spec, settings)
    if spec.runtime == "onnxruntime":
        return OnnxRuntimeModel.load(spec, settings)
    if spec.runtime == "triton":
        # Imported here: Triton's client brings gevent, which a service without Triton
        # members has no use for.
        from ensemble.triton_model import TritonModel

        return TritonModel.load(spec, settings, features, classes)
    assert spec.factory is not None
    module_name, _, function = spec.factory.partition(":")
    model: Model = getattr(importlib.import_module(module_name), function)(spec)
    return model


class MemberFailure(Exception):
    def __init__(self, member: str, reason: str, message: str, *, retry_after_s: int = 1) -> None:
        super().__init__(message)
        self.member = member
        self.reason = reason
        self.message = message
        self.retry_after_s = retry_after_s


class _Both:
    """One measurement recorded in the member's metric and in the service-wide one."""

    def __init__(self, mine: object, overall: object) -> None:
        self._mine, self._overall = mine, overall

    def observe(self, amount: float) -> None:
        self._mine.observe(amount)  # type: ignore[attr-defined]
        self._overall.observe(amount)  # type: ignore[attr-defined]

    def inc(self, amount: float = 1) -> None:
        self._mine.inc(amount)  # type: ignore[attr-defined]
        self._overall.inc(amount)  # type: ignore[attr-defined]


class _RejectedBy:
    def __init__(self, metrics: Metrics, member: str) -> None:
        self._metrics, self._member = metrics, member

    def labels(self, reason: str, /) -> _Both:
        return _Both(
            self._metrics.member_rejected.labels(self._member, reason),
            self._metrics.rejected.labels(reason),
        )


class MemberBatchMetrics:
    """A member's batcher metrics: its own, labelled by member, and the service-wide ones
    the batching pack's panels and alerts read (queue depth and capacity there are the sum
    over members, which the runtime sets)."""

    def __init__(self, metrics: Metrics, member: str) -> None:
        self.inference_latency = _Both(
            metrics.member_inference_latency.labels(member), metrics.inference_latency
        )
        self.queue_wait = _Both(metrics.member_queue_wait.labels(member), metrics.queue_wait)
        self.batch_size = _Both(metrics.member_batch_size.labels(member), metrics.batch_size)
        self.queue_depth = metrics.member_queue_depth.labels(member)
        self.queue_capacity = metrics.member_queue_capacity.labels(member)
        self.rejected = _RejectedBy(metrics, member)


class Member:
    """One member for the life of the app: its model, batcher, breaker and metrics."""

    def __init__(
        self, spec: MemberSpec, settings: Settings, metrics: Metrics, tracer: trace.Tracer
    ) -> None:
        self.spec = spec
        self.name = spec.name
        self.settings = settings
        self.metrics = metrics
        self.tracer = tracer
        self.model: Model | None = None
        self.failure: str | None = None  # why it did not load, if it did not
        self.batcher: MicroBatcher[np.ndarray, np.ndarray] | None = None
        self.classes = 0
        state = metrics.breaker_state.labels(spec.name)
        self.breaker = CircuitBreaker(
            spec.breaker_failures, spec.breaker_reset_s, on_change=lambda s: state.set(int(s))
        )
        metrics.member_weight.labels(spec.name, str(spec.required).lower()).set(spec.weight)
        # Every series at zero from the start, so rates and alerts see a member's first
        # failure as a change, not as a series appearing.
        for outcome in ("ok", *REASONS):
            metrics.member_calls.labels(spec.name, outcome)
        for reason in REASONS:
            metrics.degraded.labels(spec.name, reason)
        for answered_by in ("first", "hedge"):
            metrics.member_hedges.labels(spec.name, answered_by)
        metrics.member_deadline_misses.labels(spec.name)
        self.max_batch_size = spec.max_batch_size or settings.max_batch_size
        self.max_queue_size = spec.max_queue_size or settings.max_queue_size
        self.workers = spec.workers or settings.inference_workers
        self.hedges = HedgeBudget()

    @property
    def loaded(self) -> bool:
        return self.batcher is not None

    @property
    def queue_depth(self) -> int:
        return self.batcher.queue_depth if self.batcher is not None else 0

    async def start(self, features: int, classes: int) -> None:
        """Loads the model and checks it on a batch of one and of the largest size; a model
        that loads but fails that warm-up starts with its breaker open."""
        self.classes = classes
        self.model = await asyncio.to_thread(
            load_model, self.spec, self.settings, features, classes
        )
        self.batcher = MicroBatcher(
            self._infer,
            max_batch_size=self.max_batch_size,
            max_wait_s=(
                self.spec.max_wait_ms
                if self.spec.max_wait_ms is not None
                else self.settings.max_wait_ms
            )
            / 1000,
            max_queue_size=self.max_queue_size,
            metrics=MemberBatchMetrics(self.metrics, self.name),
            retry_after_s=self.settings.retry_after_s,
            max_concurrent_batches=self.workers,
            tracer=self.tracer,
        )
        seconds = float("inf")
        try:
            for size in dict.fromkeys((1, self.max_batch_size)):
                for _ in range(max(1, self.settings.warmup_iterations)):
                    seconds = await asyncio.to_thread(self._timed, features, size)
        except Exception as exc:
            logger.warning(
                "member failed its warm-up; its breaker starts open",
                extra={"member": self.name, "error": f"{type(exc).__name__}: {exc}"},
            )
            self.breaker.trip()
        else:
            # The last run of the largest batch decides where the member runs.
            self.batcher.inline = self.spec.runtime in ("torch", "onnxruntime") and (
                seconds * 1000 < self.settings.inline_below_ms
            )
        await self.batcher.start()

    async def stop(self) -> None:
        if self.batcher is not None:
            await self.batcher.stop()

    def _timed(self, features: int, size: int) -> float:
        started = time.perf_counter()
        self._infer([np.zeros(features, np.float32)] * size)
        return time.perf_counter() - started

    def _infer(self, items: Sequence[np.ndarray]) -> list[np.ndarray]:
        assert self.model is not None
        logits = np.asarray(self.model.predict(np.stack(items)))
        if logits.shape != (len(items), self.classes):
            raise ValueError(
                f"member {self.name} answered shape {list(logits.shape)} for {len(items)} "
                f"inputs, not [{len(items)}, {self.classes}]"
            )
        return list(softmax(logits.astype(np.float32)))

    def admit(self) -> Admission:
        """A place in this member's queue, or MemberFailure (overloaded or circuit_open)."""
        if self.batcher is None:
            raise MemberFailure(
                self.name, "not_loaded", f"member {self.name} did not load: {self.failure}"
            )
        if self.breaker.state is BreakerState.OPEN:
            raise MemberFailure(
                self.name,
                "circuit_open",
                f"member {self.name} failed {self.spec.breaker_failures} calls in a row; "
                "its circuit breaker is open",
                retry_after_s=self.breaker.retry_after_s(),
            )
        try:
            return self.batcher.admit()
        except Overloaded as exc:
            raise MemberFailure(self.name, "overloaded", exc.message) from None

    async def call(self, inputs: np.ndarray, deadline: float, admission: Admission) -> np.ndarray:
        """Class probabilities (inputs, classes), or MemberFailure. Waits until `deadline`
        (monotonic; the caller's, never later than the member's own), never longer."""
        started = time.monotonic()
        try:
            result = await self._call(
                inputs, min(deadline, started + self.spec.deadline_s), admission
            )
        except MemberFailure as failure:
            self.metrics.member_calls.labels(self.name, failure.reason).inc()
            if failure.reason == "deadline":
                self.metrics.member_deadline_misses.labels(self.name).inc()
            raise
        finally:
            self.metrics.member_latency.labels(self.name).observe(time.monotonic() - started)
        self.metrics.member_calls.labels(self.name, "ok").inc()
        return result

    async def _call(self, inputs: np.ndarray, deadline: float, admission: Admission) -> np.ndarray:
        assert self.batcher is not None
        if not self.breaker.allow():
            admission.release()
            raise MemberFailure(
                self.name,
                "circuit_open",
                f"member {self.name}'s circuit breaker is open (a probe is already running)",
                retry_after_s=self.breaker.retry_after_s(),
            )
        rows = list(inputs)  # views of the request's array, no copies
        outcome = "cancelled"
        try:
            result = await self._first_answer(rows, deadline, admission)
            outcome = "ok"
            return result
        except InferenceTimeout:
            outcome = "failure"
            raise MemberFailure(
                self.name,
                "deadline",
                f"member {self.name} did not answer within {self.spec.deadline_ms:g} ms",
            ) from None
        except Overloaded as exc:
            outcome = "overloaded"
            raise MemberFailure(self.name, "overloaded", exc.message) from None
        except Exception as exc:
            outcome = "failure"
            raise MemberFailure(
                self.name, "error", f"member {self.name} failed: {type(exc).__name__}: {exc}"
            ) from None
        finally:
            admission.release()  # a call cancelled before it queued gives its place back
            if outcome == "ok":
                self.breaker.record_success()
            elif outcome == "failure":
                self.breaker.record_failure()
            else:
                self.breaker.release()

    async def _first_answer(
        self, rows: list[np.ndarray], deadline: float, admission: Admission
    ) -> np.ndarray:
        assert self.batcher is not None
        batcher = self.batcher
        first = asyncio.ensure_future(batcher.submit(rows, deadline - time.monotonic(), admission))
        hedge_after = self.spec.hedge_after_ms
        self.hedges.earn()
        if hedge_after is None:
            return np.stack(await first)
        done, _ = await asyncio.wait({first}, timeout=hedge_after / 1000)
        if done or deadline - time.monotonic() <= 0 or not self._may_hedge():
            return np.stack(await first)
        second = asyncio.ensure_future(batcher.submit(rows, deadline - time.monotonic()))
        calls = {first: "first", second: "hedge"}
        try:
            pending = set(calls)
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.exception() is None or not pending:
                        self.metrics.member_hedges.labels(self.name, calls[task]).inc()
                        return np.stack(task.result())
            raise AssertionError("unreachable: one call always ends the loop")
        finally:
            for task in calls:
                task.cancel()
            await asyncio.gather(*calls, return_exceptions=True)

    def _may_hedge(self) -> bool:
        """A hedge only where it can help, a worker being idle (one queued behind the
        straggler would only wait for it), and within the member's hedge budget."""
        assert self.batcher is not None
        return self.batcher.idle_workers > 0 and self.hedges.spend()


class HedgeBudget:
    """Hedges as a share of calls: each call earns `share` of a hedge, each hedge spends
    one, and at most `burst` are saved up. Under load every call is slow, and hedging them
    all would double the load that made them slow."""

    def __init__(self, share: float = HEDGE_SHARE, burst: float = 10.0) -> None:
        self.share = share
        self.burst = burst
        self.tokens = burst

    def earn(self) -> None:
        self.tokens = min(self.burst, self.tokens + self.share)

    def spend(self) -> bool:
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


def _check_file(path: Path, sha256: str | None) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"model file {path} does not exist")
    if sha256 and sha256_of(path) != sha256.lower():
        raise ValueError(f"model file {path} has sha256 {sha256_of(path)}, expected {sha256}")


def _torch_device(setting: str) -> torch.device:
    if setting == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(setting)
