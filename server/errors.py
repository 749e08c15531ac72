"""HTTP errors of the prediction API, one class per outcome, and their handlers.

Route and model code raise these (or let validation fail); the handlers
registered by :func:`install_handlers` turn them into an
:class:`~loanops.server.schemas.ErrorResponse` body. No response ever
carries a traceback: unexpected exceptions become a 500 that names only the
request id, and are logged with it and counted.

Hierarchy::

    APIError                     base, never raised itself
    ├── BadRequestError          400: a request that cannot be read at all
    ├── PayloadTooLargeError     413: body above the configured size
    ├── InvalidApplicationError  422: fields that break the schema
    └── NotReadyError            503: no model loaded (yet)

401 (missing or wrong bearer token) and 413 for bodies refused before they
are read are answered by :mod:`loanops.server.middleware`, in the same shape.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from loanops.schema import FIELDS_BY_NAME
from loanops.server.schemas import ErrorDetail, ErrorResponse

logger = logging.getLogger(__name__)


class APIError(Exception):
    """An error answered with its status code and an ErrorResponse body."""

    status_code = 500
    error = "internal_error"

    def __init__(self, message: str, details: list[ErrorDetail] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []


class BadRequestError(APIError):
    """The request body cannot be read."""

    status_code = 400
    error = "bad_request"


class PayloadTooLargeError(APIError):
    """The request body is larger than the server accepts."""

    status_code = 413
    error = "payload_too_large"


class InvalidApplicationError(APIError):
    """One or more fields of the request break the schema."""

    status_code = 422
    error = "invalid_request"


class NotReadyError(APIError):
    """The server has no model ready to score with."""

    status_code = 503
    error = "not_ready"


def request_id_of(request: Request) -> str | None:
    """Return the id the request-id middleware gave this request."""
    value = getattr(request.state, "request_id", None)
    return str(value) if value is not None else None


def _accepted(field_name: str) -> str:
    schema_field = FIELDS_BY_NAME.get(field_name)
    return f"; accepted: {schema_field.describe_range()}" if schema_field else ""


def describe_validation_errors(
    errors: list[dict[str, Any]] | Any,
    *,
    index: int | None = None,
    skip: int = 0,
    whole: str = "body",
) -> list[ErrorDetail]:
    """Turn pydantic errors into details naming the field, value and what is accepted.

    ``skip`` drops leading location parts (``body``, list positions) that the
    caller reports itself; ``whole`` names what an error of no field is about.
    """
    details = []
    for error in errors:
        location = [str(part) for part in error.get("loc", ())][skip:]
        if location[:1] == ["body"]:
            location = location[1:]
        field_name = ".".join(location) or whole
        message = str(error.get("msg", "invalid value"))
        if error.get("type") in ("model_type", "model_attributes_type", "dict_type"):
            message = "must be a JSON object with the nine application fields"
        elif error.get("type") == "extra_forbidden":
            message = "unknown field; the application has exactly the nine schema fields"
        elif error.get("type") == "literal_error":
            message = f"unknown value{_accepted(field_name)}"
        elif error.get("type") == "missing":
            message = f"field required{_accepted(field_name)}"
        else:
            message = message.removeprefix("Value error, ") + _accepted(field_name)
        value = error.get("input") if error.get("type") != "missing" else None
        if isinstance(value, dict | list):
            value = None
        details.append(ErrorDetail(field=field_name, message=message, value=value, index=index))
    return details


# A request naming thousands of unknown fields gets the first ones, not an
# answer ten times the size of the question.
MAX_DETAILS = 50


class _AsciiJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: a lone surrogate sent in a request (valid
    JSON, invalid UTF-8) must still be echoed back without failing."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def _respond(request: Request, status: int, error: str, message: str, details: Any) -> JSONResponse:
    if len(details) > MAX_DETAILS:
        omitted = len(details) - MAX_DETAILS
        message = f"{message} (first {MAX_DETAILS} problems listed, {omitted} more)"
        details = details[:MAX_DETAILS]
    body = ErrorResponse(
        error=error, message=message, request_id=request_id_of(request), details=details
    )
    return _AsciiJSONResponse(status_code=status, content=body.model_dump(mode="json"))


def install_handlers(app: FastAPI, *, on_server_error: Any) -> None:
    """Register the handlers that shape every error response."""

    @app.exception_handler(APIError)
    async def handle_api_error(request: Request, error: APIError) -> JSONResponse:
        return _respond(request, error.status_code, error.error, error.message, error.details)

    @app.exception_handler(RequestValidationError)
    async def handle_validation(request: Request, error: RequestValidationError) -> JSONResponse:
        if any(e.get("type") == "json_invalid" for e in error.errors()):
            reason = next(
                str(e.get("ctx", {}).get("error", "invalid JSON"))
                for e in error.errors()
                if e.get("type") == "json_invalid"
            )
            return _respond(
                request, 400, "bad_request", f"the body is not valid JSON: {reason}", []
            )
        details = describe_validation_errors(error.errors())
        names = sorted({d.field for d in details})
        fields = ", ".join(names[:10]) + (f" and {len(names) - 10} more" if len(names) > 10 else "")
        return _respond(request, 422, "invalid_request", f"invalid field(s): {fields}", details)

    @app.exception_handler(StarletteHTTPException)
    async def handle_http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return _respond(request, error.status_code, "http_error", str(error.detail), [])

    @app.exception_handler(Exception)
    async def handle_unexpected(request: Request, error: Exception) -> JSONResponse:
        request_id = request_id_of(request)
        on_server_error("unexpected")
        logger.exception("Request %s to %s failed unexpectedly.", request_id, request.url.path)
        return _respond(
            request,
            500,
            "internal_error",
            f"the server failed to answer request {request_id}; it has been logged",
            [],
        )
