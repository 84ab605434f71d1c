"""The members file: which models make up the ensemble, and how each is called.

    labels: ["0", "1", ...]          # every member answers over these, in this order
    input: {size: 64, min: 0, max: 16}
    stacker: stacker.json            # optional: the combiner `fit-stacker` writes
    members:
      - name: cnn
        runtime: torch               # torch (TorchScript), onnxruntime, or python
        path: cnn.pt                 # relative to this file
        sha256: 4f1c...              # optional: refuse a file with another digest
        weight: 2                    # in the weighted mean
        deadline_ms: 250             # the member is left out (or the request fails) past it
        required: true               # without it the request fails: 503 or 504
      - name: mlp
        runtime: onnxruntime
        path: mlp.int8.onnx
        hedge_after_ms: 40           # a second call when the first has not answered by then
      - name: linear
        runtime: triton              # a model on the Triton server at APP_TRITON_URL
        model: linear                # its name there (`export-triton` writes a repository)

A member may also set its own batching (`max_batch_size`, `max_wait_ms`, `max_queue_size`,
`workers`), `threads` (ONNX Runtime's intra-op threads per call) and its circuit breaker
(`breaker_failures` in a row open it, `breaker_reset_s` later one call probes it). The
`python` runtime calls `factory` ("package.module:function", given the member's spec),
which returns any object with `predict(batch) -> logits`. A `triton` member's batches go to
its `model` on a Triton server; its deadline, breaker and hedging work as for any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Runtime = Literal["torch", "onnxruntime", "python", "triton"]


class ConfigError(ValueError):
    """The members file cannot be read, or says something the service cannot do."""


class InputSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    size: int = Field(ge=1)
    min: float | None = None  # None: unbounded
    max: float | None = None

    @model_validator(mode="after")
    def _ordered(self) -> InputSpec:
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"input min {self.min:g} is above max {self.max:g}")
        return self


class MemberSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,39}$")
    runtime: Runtime
    path: Path | None = None
    factory: str | None = Field(default=None, pattern=r"^[\w.]+:\w+$")
    model: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][\w.-]{0,127}$")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    weight: float = Field(default=1.0, gt=0)
    deadline_ms: float = Field(default=500.0, gt=0)
    required: bool = False
    hedge_after_ms: float | None = Field(default=None, gt=0)
    workers: int | None = Field(default=None, ge=1)
    threads: int = Field(default=1, ge=1)
    max_batch_size: int | None = Field(default=None, ge=1)
    max_wait_ms: float | None = Field(default=None, ge=0)
    max_queue_size: int | None = Field(default=None, ge=1)
    breaker_failures: int = Field(default=5, ge=1)
    breaker_reset_s: float = Field(default=5.0, gt=0)

    @property
    def deadline_s(self) -> float:
        return self.deadline_ms / 1000

    @model_validator(mode="after")
    def _consistent(self) -> MemberSpec:
        if self.runtime == "python":
            if self.factory is None:
                raise ValueError("the python runtime needs factory: 'package.module:function'")
        elif self.runtime == "triton":
            if self.model is None:
                raise ValueError("the triton runtime needs model: the model's name on Triton")
        elif self.path is None:
            raise ValueError(f"the {self.runtime} runtime needs a path to the model file")
        if self.hedge_after_ms is not None and self.hedge_after_ms >= self.deadline_ms:
            raise ValueError(
                f"hedge_after_ms {self.hedge_after_ms:g} is not before deadline_ms "
                f"{self.deadline_ms:g}: the hedge could never answer"
            )
        return self


class EnsembleSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    labels: list[str] = Field(min_length=2)
    input: InputSpec
    members: list[MemberSpec] = Field(min_length=1)
    stacker: Path | None = None

    @model_validator(mode="after")
    def _unique(self) -> EnsembleSpec:
        for what, values in (
            ("member name", [m.name for m in self.members]),
            ("label", self.labels),
        ):
            repeated = sorted({v for v in values if values.count(v) > 1})
            if repeated:
                raise ValueError(f"each {what} must be unique; repeated: {', '.join(repeated)}")
        return self

    @property
    def deadline_s(self) -> float:
        """The longest any member may take: past it no member is waited for."""
        return max(member.deadline_s for member in self.members)


def load_ensemble(path: Path) -> EnsembleSpec:
    """The members file at `path`, its relative paths resolved against its folder; a
    ConfigError that names the member and field at fault."""
    try:
        raw = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read the members file {path}: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"the members file {path} is not valid YAML: {exc}") from None
    try:
        spec = EnsembleSpec.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(exc, raw)}") from None
    folder = path.parent
    missing = []
    for i, member in enumerate(spec.members):
        if member.path is not None and not member.path.is_absolute():
            member.path = folder / member.path
        if member.path is not None and not member.path.is_file():
            missing.append(f"members[{i}] ({member.name!r}).path: {member.path} does not exist")
    if missing:
        raise ConfigError(f"{path}: {'; '.join(missing)}")
    if spec.stacker is not None and not spec.stacker.is_absolute():
        spec.stacker = folder / spec.stacker
    return spec


def _describe(exc: ValidationError, raw: object) -> str:
    """Each error as `members[1] ('mlp').deadline_ms: <what is wrong>`."""
    lines = []
    for error in exc.errors(include_url=False):
        where = list(error["loc"])
        label = ""
        if len(where) >= 2 and where[0] == "members" and isinstance(where[1], int):
            label = f"members[{where[1]}]"
            members = raw.get("members") if isinstance(raw, dict) else None
            if isinstance(members, list) and where[1] < len(members):
                name = (
                    members[where[1]].get("name") if isinstance(members[where[1]], dict) else None
                )
                if name:
                    label += f" ({name!r})"
            where = where[2:]
        rest = ".".join(str(part) for part in where)
        place = ".".join(part for part in (label, rest) if part) or "the file"
        lines.append(f"{place}: {error['msg']}")
    return "; ".join(lines)
