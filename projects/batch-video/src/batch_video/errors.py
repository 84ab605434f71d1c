"""The error model: every failure is a JSON body with a stable code and a message.

    {"error": {"code": "payload_too_large", "message": "...", "request_id": "..."}}

Clients branch on `code`, never on `message`. Handlers here make sure nothing reaches a
client as a bare 500 or an HTML page.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger(__name__)


class ServiceError(Exception):
    """An error the client can act on: an HTTP status, a stable code and a message."""

    status_code: int = HTTPStatus.INTERNAL_SERVER_ERROR
    code: str = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        details: object = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.headers = dict(headers or {})
        self.details = details


class InvalidInput(ServiceError):
    status_code = HTTPStatus.UNPROCESSABLE_ENTITY
    code = "invalid_request"


class PayloadTooLarge(ServiceError):
    status_code = HTTPStatus.REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status_code = HTTPStatus.UNSUPPORTED_MEDIA_TYPE
    code = "unsupported_media_type"


class Unauthorized(ServiceError):
    status_code = HTTPStatus.UNAUTHORIZED
    code = "unauthorized"

    def __init__(self, message: str = "a valid X-API-Key header is required") -> None:
        super().__init__(message, headers={"WWW-Authenticate": "ApiKey"})


class Unavailable(ServiceError):
    """503: the client should retry after `retry_after_s` seconds."""

    status_code = HTTPStatus.SERVICE_UNAVAILABLE
    code = "unavailable"

    def __init__(self, message: str, *, retry_after_s: int = 1, code: str | None = None) -> None:
        super().__init__(message, code=code, headers={"Retry-After": str(retry_after_s)})


class Overloaded(Unavailable):
    code = "overloaded"


class NotReady(Unavailable):
    code = "not_ready"


class UpstreamUnavailable(Unavailable):
    code = "upstream_unavailable"


class InferenceTimeout(ServiceError):
    status_code = HTTPStatus.GATEWAY_TIMEOUT
    code = "inference_timeout"


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str
    message: str
    request_id: str | None
    details: object = None


class ErrorBody(BaseModel):
    """Every error response's body, whatever the status."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


# What each status means wherever it appears, with its codes; a route adds its own.
ERROR_DESCRIPTIONS = {
    400: "Bad request: a body that cannot be parsed (`bad_request`).",
    401: "Missing or invalid API key (`unauthorized`).",
    404: "Not found (`not_found`).",
    413: "Body over the size limit (`payload_too_large`).",
    415: "Unsupported content type (`unsupported_media_type`).",
    422: "The request does not match the schema (`invalid_request`).",
    429: "Over a limit; see Retry-After.",
    503: "Model loading (`not_ready`) or replica over its budget or queue (`overloaded`); "
    "see Retry-After.",
    504: "No answer within the deadline.",
}


def error_responses(*statuses: int, **descriptions: str) -> dict[int | str, dict[str, object]]:
    """OpenAPI `responses` for error statuses, each with the error body's schema. Pass a
    description as `s404="..."` to say what a status means on one route."""
    responses: dict[int | str, dict[str, object]] = {}
    for status in statuses:
        description = descriptions.get(f"s{status}") or ERROR_DESCRIPTIONS[status]
        responses[status] = {"model": ErrorBody, "description": description}
    return responses


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def error_response(
    request: Request,
    status_code: int,
    code: str,
    message: str,
    *,
    headers: Mapping[str, str] | None = None,
    details: object = None,
) -> JSONResponse:
    body: dict[str, object] = {
        "code": code,
        "message": message,
        "request_id": request_id_of(request),
    }
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status_code, headers=dict(headers or {}))


_HTTP_CODES = {
    HTTPStatus.BAD_REQUEST: "bad_request",
    HTTPStatus.NOT_FOUND: "not_found",
    HTTPStatus.METHOD_NOT_ALLOWED: "method_not_allowed",
}


async def _service_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    return error_response(
        request, exc.status_code, exc.code, exc.message, headers=exc.headers, details=exc.details
    )


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(HTTPStatus(exc.status_code), "http_error")
    headers = dict(exc.headers or {})
    if exc.status_code == HTTPStatus.METHOD_NOT_ALLOWED:
        # Starlette names the methods of the first route on the path only.
        headers["Allow"] = ", ".join(sorted(_methods_on(request)))
    return error_response(request, exc.status_code, code, str(exc.detail), headers=headers)


def _methods_on(request: Request) -> set[str]:
    """Every method some route takes on the request's path."""
    methods: set[str] = set()
    for route in request.app.routes:
        pattern = getattr(route, "path_regex", None)
        if pattern is not None and pattern.match(request.url.path):
            methods |= set(getattr(route, "methods", None) or ())
    return methods


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    details = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    return error_response(
        request,
        HTTPStatus.UNPROCESSABLE_ENTITY,
        "invalid_request",
        "the request does not match the API schema",
        details=details,
    )


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("unhandled error", exc_info=exc)
    return error_response(
        request, HTTPStatus.INTERNAL_SERVER_ERROR, "internal_error", "internal server error"
    )


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(Exception, _unexpected_error)
