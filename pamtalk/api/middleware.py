"""The outermost ASGI layer: request id, body size limit, access log and request metrics.

Pure ASGI (not BaseHTTPMiddleware) so that it adds no task or buffering per request.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from pamtalk.api import context
from pamtalk.api.errors import error_response
from pamtalk.api.metrics import REQUEST_DURATION, REQUEST_TOTAL

log = logging.getLogger("pamtalk.access")

_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class _BodyTooLarge(Exception):
    pass


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
        token = context.current.set(ctx)
        start = time.perf_counter()
        status = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise _BodyTooLarge
            return message

        try:
            declared = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            declared = 0
        try:
            if declared > self.max_body_bytes:
                raise _BodyTooLarge
            await self.app(scope, limited_receive, send_with_id)
        except _BodyTooLarge:
            if not response_started:
                response = error_response(
                    413,
                    "payload_too_large",
                    f"request body exceeds {self.max_body_bytes} bytes",
                )
                await response(scope, receive, send_with_id)
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
