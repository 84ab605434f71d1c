"""The ensemble API: `POST /v1/classify` and `GET /v1/members`."""

from __future__ import annotations

import json
import time

import numpy as np
from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from ensemble.config import EnsembleSpec
from ensemble.errors import InvalidInput, UnsupportedMediaType, error_responses
from ensemble.runtime import EnsembleAnswer, EnsembleRuntime
from ensemble.schemas import (
    ClassifyRequest,
    ClassifyResponse,
    EnsembleInfo,
    LeftOut,
    MemberAnswer,
    MemberInfo,
    Prediction,
)
from ensemble.service import ready_runtime
from ensemble.settings import Settings

router = APIRouter(prefix="/v1", tags=["ensemble"])

_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {
            "schema": ClassifyRequest.model_json_schema(
                ref_template="#/components/schemas/{model}"
            ),
            "examples": {
                "one digit": {
                    "value": ClassifyRequest.model_config["json_schema_extra"]["examples"][0]  # type: ignore[index]
                }
            },
        }
    },
}

_ERRORS = error_responses(
    415,
    422,
    503,
    504,
    s415="Not JSON (`unsupported_media_type`).",
    s422="Bad inputs: `wrong_input_size`, `value_out_of_range`, `too_many_inputs`, "
    "`malformed_json`, `stacking_unavailable`, `invalid_request`.",
    s503="A required member is unavailable (`member_unavailable`), no member answered "
    "(`no_member_answered`), a queue or the memory budget is full (`overloaded`), or the "
    "members are loading (`not_ready`); see Retry-After.",
    s504="A required member missed its deadline (`member_timeout`).",
)


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    summary="Classify inputs with every member, combined",
    description="Each input goes to every member at once; the answer holds each member's "
    "label, the combined one and how far the members agree. A member that fails or misses "
    "its deadline is left out when optional (`degraded`), and fails the request when required.",
    openapi_extra={"requestBody": _REQUEST_BODY},
    responses=_ERRORS,
)
async def classify(request: Request) -> ClassifyResponse:
    runtime: EnsembleRuntime = ready_runtime(request)
    settings: Settings = request.app.state.settings
    arrived = time.monotonic()
    deadline = arrived + settings.request_timeout_s
    # A place in every member's queue before reading a byte: a full queue refuses at once.
    with runtime.admit() as admissions:
        body = await _read_request(request)
        spec = runtime.loaded_spec()
        inputs = _checked_inputs(body, spec, settings)
        aggregation = body.aggregation or settings.aggregation
        if aggregation == "stacking" and runtime.stacker is None:
            raise InvalidInput(
                "stacking needs a stacker: run fit-stacker and name it in the members file",
                code="stacking_unavailable",
            )
        answer = await runtime.classify(
            inputs, aggregation, arrived=arrived, deadline=deadline, admissions=admissions
        )
    return _response(answer, spec, runtime)


@router.get("/members", response_model=EnsembleInfo, summary="Describe the ensemble's members")
async def members(request: Request) -> EnsembleInfo:
    runtime: EnsembleRuntime = ready_runtime(request)
    settings: Settings = request.app.state.settings
    spec = runtime.loaded_spec()
    return EnsembleInfo(
        labels=spec.labels,
        input_size=spec.input.size,
        input_min=spec.input.min,
        input_max=spec.input.max,
        default_aggregation=settings.aggregation,
        stacking=runtime.stacker is not None,
        members=[
            MemberInfo(
                name=m.name,
                runtime=m.spec.runtime,
                weight=m.spec.weight,
                deadline_ms=m.spec.deadline_ms,
                required=m.spec.required,
                hedge_after_ms=m.spec.hedge_after_ms,
                loaded=m.loaded,
                inline=m.batcher is not None and m.batcher.inline,
                breaker=m.breaker.state.name.lower(),  # type: ignore[arg-type]
                failure=m.failure,
            )
            for m in runtime.members
        ],
    )


async def _read_request(request: Request) -> ClassifyRequest:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType(
            f"content type {media_type or '(none)'!r} is not supported: send application/json"
        )
    body = await request.body()
    try:
        payload = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"the body is not valid JSON: {exc}", code="malformed_json") from None
    except RecursionError:  # nested deeper than the parser goes; no real request is
        raise InvalidInput(
            "the body nests too deeply to be a request", code="malformed_json"
        ) from None
    try:
        return ClassifyRequest.model_validate(payload)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None


def _checked_inputs(body: ClassifyRequest, spec: EnsembleSpec, settings: Settings) -> np.ndarray:
    """The inputs as one float32 array (inputs, features), every member's to share."""
    if len(body.inputs) > settings.max_inputs_per_request:
        raise InvalidInput(
            f"{len(body.inputs)} inputs sent; at most {settings.max_inputs_per_request} per "
            "request",
            code="too_many_inputs",
        )
    size = spec.input.size
    for i, row in enumerate(body.inputs):
        if len(row) != size:
            raise InvalidInput(
                f"inputs[{i}] has {len(row)} values; every input has {size}",
                code="wrong_input_size",
            )
    inputs = np.asarray(body.inputs, dtype=np.float64)
    low = -np.inf if spec.input.min is None else spec.input.min
    high = np.inf if spec.input.max is None else spec.input.max
    bad = ~(np.isfinite(inputs) & (inputs >= low) & (inputs <= high))
    if bad.any():
        i, j = (int(v) for v in np.argwhere(bad)[0])
        bounds = (
            f"between {spec.input.min:g} and {spec.input.max:g}"
            if np.isfinite([low, high]).all()
            else "finite"
        )
        raise InvalidInput(
            f"inputs[{i}][{j}] is {inputs[i, j]!r}; every value must be {bounds}",
            code="value_out_of_range",
        )
    return inputs.astype(np.float32)


def _response(
    answer: EnsembleAnswer, spec: EnsembleSpec, runtime: EnsembleRuntime
) -> ClassifyResponse:
    labels = spec.labels
    combined = answer.combined.probabilities
    members = [m.name for m in runtime.members if m.name in answer.answered]
    predictions = []
    for i, row in enumerate(combined):
        best = int(row.argmax())
        runtime.metrics.predictions.labels(labels[best]).inc()
        predictions.append(
            Prediction(
                index=i,
                label=labels[best],
                score=round(float(row[best]), 6),
                agreement=round(float(answer.agreement[i]), 4),
                members=[
                    MemberAnswer(
                        member=name,
                        label=labels[int(answer.answered[name][i].argmax())],
                        score=round(float(answer.answered[name][i].max()), 6),
                    )
                    for name in members
                ],
            )
        )
    left_out = [
        LeftOut(member=name, reason=failure.reason, message=failure.message)  # type: ignore[arg-type]
        for name, failure in answer.failures.items()
    ]
    return ClassifyResponse(
        aggregation=answer.combined.aggregation,
        aggregation_note=answer.combined.note,
        degraded=bool(left_out),
        members=members,
        left_out=left_out,
        predictions=predictions,
    )
