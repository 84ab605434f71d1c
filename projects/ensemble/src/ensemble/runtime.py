"""The ensemble runtime: loads the members, fans each request out to them, joins, combines.

Every member is called at once; each answers within its own deadline or is left out, so a
request never waits past the largest member deadline (or the request timeout, if sooner)
plus the combining. An optional member that fails is named in the response (`degraded`,
with why); a required one fails the request: 504 `member_timeout` when it missed its
deadline, else 503 `member_unavailable` with Retry-After.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
from opentelemetry import trace

from ensemble.aggregation import Combined, Stacker, agreement, combine
from ensemble.batching import Admission
from ensemble.config import EnsembleSpec, load_ensemble
from ensemble.errors import InferenceTimeout, NotReady, Overloaded, Unavailable
from ensemble.members import Member, MemberFailure
from ensemble.observability import Metrics
from ensemble.settings import Settings

logger = logging.getLogger(__name__)


class MemberUnavailable(Unavailable):
    code = "member_unavailable"


class NoMemberAnswered(Unavailable):
    code = "no_member_answered"


class MemberTimeout(InferenceTimeout):
    code = "member_timeout"


@dataclass
class Admissions:
    """A request's place in every member's queue, taken before it reads its inputs; the
    members that cannot take it are already failures."""

    places: dict[str, Admission] = field(default_factory=dict)
    failures: dict[str, MemberFailure] = field(default_factory=dict)

    def release(self) -> None:
        for place in self.places.values():
            place.release()

    def __enter__(self) -> Admissions:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@dataclass(frozen=True)
class EnsembleAnswer:
    combined: Combined
    answered: dict[str, np.ndarray]  # member name -> probabilities (inputs, classes)
    failures: dict[str, MemberFailure]
    agreement: np.ndarray  # (inputs,)


class EnsembleRuntime:
    def __init__(self, settings: Settings, metrics: Metrics, tracer: trace.Tracer) -> None:
        self.settings = settings
        self.metrics = metrics
        self.tracer = tracer
        self.spec: EnsembleSpec | None = None
        self.members: list[Member] = []
        self.stacker: Stacker | None = None
        self._ready = False
        self._failure: str | None = None
        self.working_bytes = 0  # a few small networks: their activations are negligible

    @property
    def ready(self) -> bool:
        return self._ready

    @property
    def failure(self) -> str | None:
        return self._failure

    async def start(self) -> None:
        started = time.perf_counter()
        try:
            await self._start()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failure = f"{type(exc).__name__}: {exc}"
            raise
        elapsed = time.perf_counter() - started
        self.metrics.model_load_seconds.set(elapsed)
        self.metrics.model_ready.set(1)
        self._ready = True
        logger.info(
            "ensemble ready",
            extra={
                "load_seconds": round(elapsed, 3),
                "members": [m.name for m in self.members if m.loaded],
                "not_loaded": {m.name: m.failure for m in self.members if not m.loaded},
            },
        )

    async def _start(self) -> None:
        spec = await asyncio.to_thread(load_ensemble, self.settings.members_path)
        torch.set_num_threads(self.settings.torch_threads)
        self.members = [Member(m, self.settings, self.metrics, self.tracer) for m in spec.members]
        results = await asyncio.gather(
            *(m.start(spec.input.size, len(spec.labels)) for m in self.members),
            return_exceptions=True,
        )
        for member, result in zip(self.members, results, strict=True):
            if isinstance(result, BaseException):
                reason = f"{type(result).__name__}: {result}"
                if member.spec.required:
                    await self.stop()
                    raise RuntimeError(f"required member {member.name} did not load: {reason}")
                member.failure = reason
                logger.warning(
                    "optional member did not load", extra={"member": member.name, "error": reason}
                )
        if spec.stacker is not None:
            self.stacker = await asyncio.to_thread(Stacker.load, spec.stacker)
            unknown = sorted(set(self.stacker.members) - {m.name for m in self.members})
            if unknown or list(self.stacker.labels) != spec.labels:
                raise ValueError(
                    f"the stacker {spec.stacker.name} was fitted on other members or labels "
                    f"(members {', '.join(self.stacker.members)}); fit it again with fit-stacker"
                )
        self.metrics.queue_depth.set_function(lambda: sum(m.queue_depth for m in self.members))
        self.metrics.queue_capacity.set(sum(m.max_queue_size for m in self.members if m.loaded))
        self.spec = spec

    async def stop(self) -> None:
        self._ready = False
        self.metrics.model_ready.set(0)
        await asyncio.gather(*(m.stop() for m in self.members), return_exceptions=True)

    def loaded_spec(self) -> EnsembleSpec:
        if not self._ready or self.spec is None:
            raise NotReady("the members are loading", retry_after_s=self.settings.retry_after_s)
        return self.spec

    def admit(self) -> Admissions:
        """A place in every member's queue before the request reads its inputs: a required
        member that cannot take it refuses the request at once (503, Retry-After)."""
        self.loaded_spec()
        admissions = Admissions()
        for member in self.members:
            try:
                admissions.places[member.name] = member.admit()
            except MemberFailure as failure:
                if member.spec.required:
                    admissions.release()
                    self.metrics.member_calls.labels(member.name, failure.reason).inc()
                    if failure.reason == "overloaded":
                        raise Overloaded(
                            failure.message, retry_after_s=self.settings.retry_after_s
                        ) from None
                    raise MemberUnavailable(
                        failure.message, retry_after_s=failure.retry_after_s
                    ) from None
                admissions.failures[member.name] = failure
        return admissions

    async def classify(
        self,
        inputs: np.ndarray,
        aggregation: str,
        *,
        arrived: float,
        deadline: float,
        admissions: Admissions,
    ) -> EnsembleAnswer:
        """Every admitted member's answer on `inputs` (inputs, features), combined. Member
        deadlines count from `arrived` (monotonic), when the request came in: reading and
        checking it is part of the time a member's deadline allows."""
        calls = {
            member.name: asyncio.ensure_future(
                member.call(
                    inputs,
                    min(deadline, arrived + member.spec.deadline_s),
                    admissions.places.pop(member.name),
                )
            )
            for member in self.members
            if member.name in admissions.places
        }
        failures = dict(admissions.failures)
        for name, failure in failures.items():
            self.metrics.member_calls.labels(name, failure.reason).inc()
        with self.tracer.start_as_current_span("fan-out", attributes={"members": len(calls)}):
            # Each call ends by its own deadline; this bound only guards against one that
            # does not (a runtime that ignores cancellation).
            limit = min(deadline, arrived + self.loaded_spec().deadline_s) - time.monotonic()
            limit += 0.05
            late: set[asyncio.Future[np.ndarray]] = set()
            if calls:
                _, late = await asyncio.wait(calls.values(), timeout=max(0.0, limit))
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
        answered: dict[str, np.ndarray] = {}
        for name, task in calls.items():
            if task in late:
                failures[name] = MemberFailure(
                    name, "deadline", f"member {name} did not answer in time"
                )
            elif isinstance(task.exception(), MemberFailure):
                failures[name] = task.exception()  # type: ignore[assignment]
            elif task.exception() is not None:
                raise task.exception()  # type: ignore[misc]
            else:
                answered[name] = task.result()
        self._fail_on_required(failures)
        if not answered:
            retry = min((f.retry_after_s for f in failures.values()), default=1)
            reasons = ", ".join(f"{name}: {f.reason}" for name, f in failures.items())
            raise NoMemberAnswered(f"no member answered ({reasons})", retry_after_s=retry)
        started = time.perf_counter()
        weights = {member.name: member.spec.weight for member in self.members}
        combined = combine(aggregation, answered, weights, self.stacker)
        agreed = agreement(answered, combined.probabilities)
        self.metrics.aggregation_latency.labels(combined.aggregation).observe(
            time.perf_counter() - started
        )
        for value in agreed:
            self.metrics.agreement.observe(float(value))
        for name, failure in failures.items():
            self.metrics.degraded.labels(name, failure.reason).inc()
        return EnsembleAnswer(combined, answered, failures, agreed)

    def _fail_on_required(self, failures: dict[str, MemberFailure]) -> None:
        for member in self.members:
            failure = failures.get(member.name)
            if failure is None or not member.spec.required:
                continue
            if failure.reason == "deadline":
                raise MemberTimeout(failure.message, code="member_timeout")
            raise MemberUnavailable(failure.message, retry_after_s=failure.retry_after_s)
