"""The one error handler and the one JSON error shape:
``{"error": {"code", "message", "details"?, "request_id"}}``."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from pamtalk.api import context
from pamtalk.api.metrics import ERRORS_TOTAL
from pamtalk.api.responses import JSONResponse
from pamtalk.api.schemas.common import UNKNOWN_VALUE
from pamtalk.db.outage import database_unavailable  # a retriable 503, never a 500
from pamtalk.errors import PamtalkError

log = logging.getLogger(__name__)


class ErrorDetail(BaseModel):
    code: str
    message: str
    details: Any | None = None
    request_id: str | None


class ErrorResponse(BaseModel):
    """The one error shape, as OpenAPI documents it for every route."""

    error: ErrorDetail


RESPONSES: dict[int | str, dict[str, Any]] = {
    "4XX": {"model": ErrorResponse, "description": "Client error"},
    "5XX": {"model": ErrorResponse, "description": "Server error"},
}

_HTTP_CODES = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
}


def record_error(code: str) -> None:
    """Count an error response and put its code in the access log line."""
    ctx = context.current.get()
    if ctx is not None:
        ctx.error_code = code
    ERRORS_TOTAL.labels(code).inc()


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    record_error(code)
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    body["request_id"] = context.request_id()
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def _validation_details(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Echoing the input back could return megabytes or unserialisable values: send
    # location, message and type only.
    details = []
    for err in exc.errors():
        detail = {
            "loc": list(err.get("loc", ())),
            "msg": str(err.get("msg", "")).removeprefix("Value error, "),
            "type": err.get("type"),
        }
        if err.get("type") == UNKNOWN_VALUE:
            detail["valid"] = ", ".join(err.get("ctx", {}).get("valid", ()))
        details.append(detail)
    return details


def _validation_message(request: Request, details: list[dict[str, Any]]) -> str:
    """The first problem in one line (a body that was not sent as JSON says so). An unknown
    slug's valid values are listed once: in the message for the first problem, in its
    ``msg`` for the others."""
    for detail in details[1:]:
        if valid := detail.pop("valid", None):
            detail["msg"] += f"; valid values: {valid}"
    first = details[0] if details else {"loc": [], "msg": "invalid request"}
    valid = first.pop("valid", None)
    content_type = request.headers.get("content-type", "")
    if first["loc"] == ["body"] and "json" not in content_type and request.method != "GET":
        return (
            "the request body must be JSON sent with 'Content-Type: application/json' "
            f"(got {content_type or 'no Content-Type'})"
        )
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" + (f"; valid values: {valid}" if valid else "")


def install(app: FastAPI) -> None:
    @app.exception_handler(PamtalkError)
    async def _pamtalk(_: Request, exc: PamtalkError) -> JSONResponse:
        return error_response(exc.status_code, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(exc)
        return error_response(422, "invalid_input", _validation_message(request, details), details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(sqlalchemy.exc.TimeoutError)
    async def _pool_exhausted(_: Request, exc: sqlalchemy.exc.TimeoutError) -> JSONResponse:
        # Every pooled connection stayed busy for the pool timeout: shed, do not pile up.
        return error_response(
            503,
            "database_busy",
            "the database connection pool is exhausted; retry shortly",
            headers={"Retry-After": "1"},
        )

    # Registered by class, the database's errors are answered inside the app: a handler for
    # Exception alone answers after Starlette re-raises, and the server closes the connection.
    # Any other exception reaches RequestMiddleware, which answers with unhandled() too (in
    # the request's context, so the 500 keeps its request id); this handler is the last resort.
    @app.exception_handler(sqlalchemy.exc.DBAPIError)
    @app.exception_handler(OSError)
    @app.exception_handler(Exception)
    async def _unhandled(_: Request, exc: Exception) -> JSONResponse:
        return unhandled(exc)


def unhandled(exc: BaseException) -> JSONResponse:
    """The answer to an exception nothing else handled: a retriable 503 when the database is
    gone, else a 500. The exception's text goes to the log, never to the client."""
    if database_unavailable(exc):
        log.warning("database unavailable: %s", type(exc).__name__)
        return error_response(
            503,
            "database_unavailable",
            "the database is unavailable; retry shortly",
            headers={"Retry-After": "1"},
        )
    log.error("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "internal server error")
