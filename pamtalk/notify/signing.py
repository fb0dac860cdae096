"""Webhook signatures: ``X-Pamtalk-Signature: t=<unix ts>,v1=<hex HMAC-SHA256>`` over
``"<ts>.<body>"`` with the webhook's secret (the recipe in README.md verifies it)."""

from __future__ import annotations

import hashlib
import hmac
import secrets

HEADER = "X-Pamtalk-Signature"
EVENT_ID_HEADER = "X-Pamtalk-Event-Id"
EVENT_TYPE_HEADER = "X-Pamtalk-Event-Type"
SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def signature(secret: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def verify(secret: str, header: str, body: bytes, now: float, tolerance_s: float = 300) -> bool:
    """Whether ``header`` signs ``body`` with ``secret`` within ``tolerance_s`` of ``now``."""
    try:
        parts = dict(item.split("=", 1) for item in header.split(","))
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = signature(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, parts.get("v1", ""))
