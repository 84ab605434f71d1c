"""The API's request and response bodies."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Aggregation = Literal["mean", "weighted", "vote", "stacking"]
DIGIT_THREE = [
    0, 0, 7, 15, 13, 1, 0, 0, 0, 8, 13, 6, 15, 4, 0, 0, 0, 2, 1, 13, 13, 0, 0, 0, 0, 0, 2, 15,
    11, 1, 0, 0, 0, 0, 0, 1, 12, 12, 1, 0, 0, 0, 0, 0, 1, 10, 8, 0, 0, 0, 8, 4, 5, 14, 9, 0, 0,
    0, 7, 13, 13, 9, 0, 0,
]  # fmt: skip


class ClassifyRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"inputs": [DIGIT_THREE], "aggregation": "weighted"}]},
    )

    inputs: list[list[float]] = Field(
        min_length=1, description="One feature vector per input (the demo: 64 pixels, 0 to 16)."
    )
    aggregation: Aggregation | None = Field(
        default=None, description="How member answers combine (default from settings)."
    )


class MemberAnswer(BaseModel):
    member: str
    label: str
    score: float


class Prediction(BaseModel):
    index: int
    label: str
    score: float
    agreement: float = Field(description="Share of answering members whose top label is this.")
    members: list[MemberAnswer]


class LeftOut(BaseModel):
    member: str
    reason: Literal["deadline", "error", "overloaded", "circuit_open", "not_loaded"]
    message: str


class ClassifyResponse(BaseModel):
    aggregation: str = Field(description="The aggregation that answered.")
    aggregation_note: str | None = Field(
        default=None, description="Why it is not the one asked for (stacking without a member)."
    )
    degraded: bool = Field(description="True when a member was left out; `left_out` says why.")
    members: list[str] = Field(description="The members that answered.")
    left_out: list[LeftOut]
    predictions: list[Prediction]


class MemberInfo(BaseModel):
    name: str
    runtime: str
    weight: float
    deadline_ms: float
    required: bool
    hedge_after_ms: float | None
    loaded: bool
    inline: bool = Field(description="Whether its calls run on the event loop (a tiny model).")
    breaker: Literal["closed", "half_open", "open"]
    failure: str | None = Field(description="Why it did not load, if it did not.")


class EnsembleInfo(BaseModel):
    labels: list[str]
    input_size: int
    input_min: float | None
    input_max: float | None
    default_aggregation: str
    stacking: bool = Field(description="Whether a stacker is loaded.")
    members: list[MemberInfo]
