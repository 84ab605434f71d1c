"""The classification API: `POST /v1/classify` and `GET /v1/model`."""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from image_classification.decoding import Upload
from image_classification.errors import InvalidInput, UnsupportedMediaType, error_responses
from image_classification.runtime import ClassifierRuntime
from image_classification.schemas import (
    ClassifyJSONRequest,
    ClassifyResponse,
    ImagePrediction,
    LabelScore,
    ModelInfo,
)
from image_classification.service import ready_runtime
from image_classification.settings import Settings

router = APIRouter(prefix="/v1", tags=["classification"])

_REQUEST_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["files"],
                "properties": {
                    "files": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "minItems": 1,
                        "description": "One or more image files.",
                    }
                },
            }
        },
        "application/json": {
            "schema": ClassifyJSONRequest.model_json_schema(
                ref_template="#/components/schemas/{model}"
            ),
            "examples": {
                "one image": {
                    "value": ClassifyJSONRequest.model_config["json_schema_extra"]["examples"][0]  # type: ignore[index]
                }
            },
        },
    },
}

_ERRORS = error_responses(
    415,
    422,
    503,
    504,
    s415="Neither multipart/form-data nor JSON (`unsupported_media_type`).",
    s422="Bad images or request: `empty_image`, `invalid_image`, `truncated_image`, "
    "`image_too_large`, `too_many_images`, `no_images`, `malformed_json`, `invalid_base64`, "
    "`malformed_multipart`, `invalid_request`.",
    s503="Queue or memory budget full (`overloaded`), or model loading (`not_ready`); "
    "see Retry-After.",
    s504="No result within the request timeout (`inference_timeout`).",
)


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    summary="Classify one or several images",
    description="Send images as multipart `files` fields or as base64 strings in JSON. "
    "Each image gets its top-k labels with probabilities.",
    openapi_extra={"requestBody": _REQUEST_BODY},
    responses=_ERRORS,
)
async def classify(
    request: Request,
    top_k: Annotated[
        int | None, Query(ge=1, description="Labels per image (default from settings).")
    ] = None,
) -> ClassifyResponse:
    runtime: ClassifierRuntime = ready_runtime(request)
    settings: Settings = request.app.state.settings
    # One deadline for the whole request: reading, decoding, queueing and the model.
    deadline = time.monotonic() + settings.request_timeout_s
    # A place in the queue before reading a byte: a full queue refuses at once.
    with runtime.admit() as admission:
        uploads, body_top_k = await _read_images(request, settings)
        metadata = runtime.loaded_metadata()
        with runtime.tracer.start_as_current_span(
            "preprocess", attributes={"images": len(uploads)}
        ):
            arrays = await runtime.decoder.preprocess(
                uploads,
                metadata.preprocessing,
                max_pixels=settings.max_image_pixels,
                budget=request.app.state.memory_budget,
                deadline=deadline,
            )
        k = body_top_k or top_k or settings.default_top_k
        predictions = await runtime.classify(arrays, k, deadline=deadline, admission=admission)
    return ClassifyResponse(
        model=metadata.name,
        model_version=metadata.version,
        predictions=[
            ImagePrediction(
                index=i,
                filename=name,
                labels=[LabelScore(label=label, score=score) for label, score in prediction],
            )
            for i, ((name, _), prediction) in enumerate(zip(uploads, predictions, strict=True))
        ],
    )


@router.get("/model", response_model=ModelInfo, summary="Describe the model being served")
async def model_info(request: Request) -> ModelInfo:
    runtime: ClassifierRuntime = ready_runtime(request)
    settings: Settings = request.app.state.settings
    metadata = runtime.loaded_metadata()
    spec = metadata.preprocessing
    return ModelInfo(
        name=metadata.name,
        version=metadata.version,
        labels=list(metadata.labels),
        input_size=list(spec.input_size),
        channels=spec.channels,
        mean=list(spec.mean),
        std=list(spec.std),
        checksum=metadata.sha256,
        architecture=metadata.architecture,
        precision=metadata.precision,
        device=runtime.device,
        backend=runtime.backend,
        max_batch_size=settings.max_batch_size,
        max_images_per_request=settings.max_images_per_request,
    )


async def _read_images(request: Request, settings: Settings) -> tuple[list[Upload], int | None]:
    media_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type == "multipart/form-data":
        return await _read_multipart(request, settings.max_images_per_request), None
    if media_type == "application/json" or media_type.endswith("+json"):
        return await _read_json(request, settings.max_images_per_request)
    raise UnsupportedMediaType(
        f"content type {media_type or '(none)'!r} is not supported: "
        "send multipart/form-data with `files` fields or application/json"
    )


async def _read_multipart(request: Request, max_images: int) -> list[Upload]:
    try:
        form = await request.form(max_files=max_images, max_fields=16)
    except StarletteHTTPException as exc:
        if "too many files" in str(exc.detail).lower():
            raise InvalidInput(
                f"at most {max_images} images per request", code="too_many_images"
            ) from None
        raise InvalidInput(
            f"malformed multipart body: {exc.detail}", code="malformed_multipart"
        ) from None
    try:
        files = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if not files:
            raise InvalidInput(
                "send one or more images as multipart `files` fields", code="no_images"
            )
        return [(upload.filename, await upload.read()) for upload in files]
    finally:
        await form.close()


async def _read_json(request: Request, max_images: int) -> tuple[list[Upload], int | None]:
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
        parsed = ClassifyJSONRequest.model_validate(payload)
    except ValidationError as exc:
        raise RequestValidationError(exc.errors(include_url=False, include_context=False)) from None
    if len(parsed.images) > max_images:
        raise InvalidInput(
            f"{len(parsed.images)} images sent, at most {max_images} per request",
            code="too_many_images",
        )
    return [(None, _decode_base64(i, text)) for i, text in enumerate(parsed.images)], parsed.top_k


def _decode_base64(index: int, text: str) -> bytes:
    if text.startswith("data:"):
        _, _, text = text.partition(",")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(f"images[{index}] is not valid base64", code="invalid_base64") from None
