"""One exception hierarchy for the whole service; each error carries its HTTP status.

Lives at the bottom layer so that serving, batching and the API raise the same errors; the
API renders them in one JSON shape (``pamtalk.api.errors``).
"""

from __future__ import annotations

from typing import Any


class PamtalkError(Exception):
    status_code = 500
    code = "internal_error"

    def __init__(self, message: str, *, details: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.details = details
        self.headers = headers


class BadRequest(PamtalkError):
    status_code, code = 400, "bad_request"


class Unauthorized(PamtalkError):
    status_code, code = 401, "unauthorized"


class Forbidden(PamtalkError):
    status_code, code = 403, "forbidden"


class NotFound(PamtalkError):
    status_code, code = 404, "not_found"


class Conflict(PamtalkError):
    status_code, code = 409, "conflict"


class PayloadTooLarge(PamtalkError):
    status_code, code = 413, "payload_too_large"


class InvalidInput(PamtalkError):
    status_code, code = 422, "invalid_input"


class TooManyRequests(PamtalkError):
    status_code, code = 429, "too_many_requests"


class ServiceUnavailable(PamtalkError):
    """Always retriable: a Retry-After is sent even when the raiser names none."""

    status_code, code = 503, "service_unavailable"

    def __init__(self, message: str, *, details: Any = None, headers: dict[str, str] | None = None):
        super().__init__(message, details=details, headers=headers or {"Retry-After": "1"})


class GatewayTimeout(PamtalkError):
    status_code, code = 504, "timeout"
