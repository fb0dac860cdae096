"""The outermost ASGI layer: request id, body size limit, security headers, the answer to
an unhandled exception, access log and request metrics.

Pure ASGI (not BaseHTTPMiddleware) so that it adds no task or buffering per request.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pamtalk import tracing
from pamtalk.api import context
from pamtalk.api.errors import error_response, unhandled
from pamtalk.api.metrics import REQUEST_DURATION, REQUEST_TOTAL

log = logging.getLogger("pamtalk.access")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Answers that carry credentials or account data: no cache (browser, proxy) may keep them.
_NO_STORE_PREFIXES = ("/v1/auth/", "/v1/users")
_SECURITY_HEADERS = [(b"x-content-type-options", b"nosniff")]
_NO_STORE = [(b"cache-control", b"no-store"), (b"pragma", b"no-cache")]


class _BodyTooLarge(HTTPException):
    """Raised from ``receive`` once a (chunked) body passes the limit. An HTTPException, so
    that FastAPI's body parsing passes it on as it is instead of turning it into a 400."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body exceeds {limit} bytes")


class RequestMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        headers = dict(scope["headers"])
        incoming_id = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming_id if _VALID_REQUEST_ID.match(incoming_id) else uuid.uuid4().hex
        ctx = context.RequestContext(request_id)
        tracing.tag_request(request_id)
        token = context.current.set(ctx)
        start = time.perf_counter()
        status = 500
        response_started = False

        no_store = scope.get("path", "").startswith(_NO_STORE_PREFIXES)
        extra_headers = [(b"x-request-id", request_id.encode()), *_SECURITY_HEADERS]
        if no_store:
            extra_headers += _NO_STORE

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                kept = message.get("headers", [])
                if no_store:  # ours replaces any Cache-Control the route set
                    kept = [h for h in kept if h[0].lower() != b"cache-control"]
                message["headers"] = [*kept, *extra_headers]
            await send(message)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge(self.max_body_bytes)
            return message

        try:
            declared = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            declared = 0
        try:
            if declared > self.max_body_bytes:
                raise _BodyTooLarge(self.max_body_bytes)
            with tracing.untraced(scope.get("path", "")):
                await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge as exc:  # read outside the app's handlers (or declared too big)
            if response_started:
                raise
            response = error_response(413, "payload_too_large", str(exc.detail))
            await response(scope, receive, send_with_id)
        except Exception as exc:
            # Answered here, not by Starlette's outermost handler: this still runs in the
            # request's context, so the 500 carries its request id and is logged with it.
            if response_started:
                raise
            await unhandled(exc)(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - start
            route = scope.get("route")
            route_path = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            REQUEST_DURATION.labels(method, route_path, status).observe(elapsed)
            REQUEST_TOTAL.labels(method, route_path, status).inc()
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "user_id": ctx.user_id,
                    "endpoint": f"{method} {route_path}",
                    "status": status,
                    "response_time": round(elapsed * 1000, 2),
                    "error_code": ctx.error_code,
                },
            )
            context.current.reset(token)
