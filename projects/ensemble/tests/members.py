"""Members for the tests: the demo's, rewritten into a new members file with changes, and
the failures no real model produces on demand, as stand-ins named so.

A stand-in runs through the `python` runtime (`factory: tests.members:<name>`), as a user's
own model would; `FailingDigits` is a real TorchScript file that raises.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
import yaml
from torch import nn

from ensemble.config import MemberSpec


def copy_demo(members_path: Path, folder: Path, **changes: dict[str, Any]) -> Path:
    """A members file in `folder` with the demo's members (their files where they are)
    and `changes` per member name; a change of None removes that field, a member changed
    to {"remove": True} is dropped, and a new name adds a member."""
    document = yaml.safe_load(members_path.read_text())
    source = members_path.parent
    document["stacker"] = str(source / document["stacker"])
    members = {m["name"]: m for m in document["members"]}
    for member in members.values():
        member["path"] = str(source / member["path"])
    for name, change in changes.items():
        member = members.setdefault(name, {"name": name})
        if change.get("remove"):
            del members[name]
            continue
        for key, value in change.items():
            if value is None:
                member.pop(key, None)
            else:
                member[key] = value
    document["members"] = list(members.values())
    path = folder / "members.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


class _Raises(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(x.sum() > -1):  # always, for real inputs: TorchScript keeps the branch
            raise RuntimeError("this member always fails")
        return x[:, :10]


def failing_torchscript(path: Path) -> Path:
    """A real TorchScript file whose forward raises: a member that errors on every call."""
    torch.jit.save(torch.jit.script(_Raises()), str(path))
    return path


class _StandIn:
    """Answers label 0 for every input, after whatever delay or failure its subclass sets;
    counts its calls."""

    def __init__(self, spec: MemberSpec) -> None:
        self.spec = spec
        self.calls = 0
        self._lock = threading.Lock()

    def predict(self, batch: np.ndarray) -> np.ndarray:
        with self._lock:
            self.calls += 1
            call = self.calls
        self.before(call, batch)
        logits = np.zeros((len(batch), 10), dtype=np.float32)
        logits[:, 0] = 1.0
        return logits

    def before(self, call: int, batch: np.ndarray) -> None:
        pass


class StallingModel(_StandIn):
    """Stand-in for a member whose calls stall (a hung upstream): every call after the
    warm-up sleeps far past any deadline."""

    warm_up_calls = 2

    def before(self, call: int, batch: np.ndarray) -> None:
        if call > self.warm_up_calls:
            time.sleep(5)


class StragglingModel(_StandIn):
    """Stand-in for a member with one slow call (a noisy neighbour): the first call after
    the warm-up takes 2 s, the others none."""

    warm_up_calls = 2

    def before(self, call: int, batch: np.ndarray) -> None:
        if call == self.warm_up_calls + 1:
            time.sleep(2)


class FlakyModel(_StandIn):
    """Stand-in for a member that fails for a while and then recovers: calls fail while
    the class's `failing` switch is on."""

    failing = False
    instances: ClassVar[list[FlakyModel]] = []

    def __init__(self, spec: MemberSpec) -> None:
        super().__init__(spec)
        FlakyModel.instances.append(self)

    def before(self, call: int, batch: np.ndarray) -> None:
        if FlakyModel.failing:
            raise RuntimeError("the member is failing")


class MeetingModel(_StandIn):
    """Stand-in for members that must run at the same time: after the warm-up, each call
    waits at a barrier until `parties` calls are inside at once (or fails after 5 s), and
    records when it started and ended."""

    warm_up_calls = 2
    parties = 3
    barrier = threading.Barrier(parties, timeout=5)
    spans: ClassVar[list[tuple[str, float, float]]] = []

    def before(self, call: int, batch: np.ndarray) -> None:
        if call > self.warm_up_calls:
            started = time.perf_counter()
            MeetingModel.barrier.wait()
            MeetingModel.spans.append((self.spec.name, started, time.perf_counter()))


def meeting(spec: MemberSpec) -> MeetingModel:
    return MeetingModel(spec)


def stalling(spec: MemberSpec) -> StallingModel:
    return StallingModel(spec)


def straggling(spec: MemberSpec) -> StragglingModel:
    return StragglingModel(spec)


def flaky(spec: MemberSpec) -> FlakyModel:
    return FlakyModel(spec)
