"""Webhook endpoints: the URL check (no private or loopback addresses unless allowed), and
registering, listing and deleting a user's webhooks. Secrets are kept encrypted
(``secret_box``): shown once at creation, decrypted only to sign a delivery."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.db.models import Webhook, WebhookDelivery
from pamtalk.db.types import utcnow
from pamtalk.errors import InvalidInput, NotFound
from pamtalk.notify import signing
from pamtalk.secretbox import SecretBox
from pamtalk.settings import Settings

MAX_PER_USER = 20
SECRET_PURPOSE = "webhook-secrets"  # the key Settings.signing_keys derives for them


def secret_box(settings: Settings) -> SecretBox:
    return SecretBox(settings.signing_keys(SECRET_PURPOSE))


async def addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        pass
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


def public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


async def check_url(url: str, allow_private: bool) -> str:
    """The URL if webhooks may be sent to it; else why not (InvalidInput)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidInput("webhook url must be an absolute http or https URL")
    if parts.username or parts.password:
        raise InvalidInput("webhook url must not carry credentials")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found = await addresses(parts.hostname, port)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"webhook host {parts.hostname!r} does not resolve") from exc
    if not allow_private and not all(public(a) for a in found):
        raise InvalidInput(
            f"webhook url {url!r} points at a private, loopback or reserved address; "
            "set PAMTALK_WEBHOOK_ALLOW_PRIVATE=1 to allow it (dev and tests only)"
        )
    return url


async def create(
    session: AsyncSession, user_id: int, url: str, events: list[str], settings: Settings
) -> tuple[Webhook, str]:
    """Register a webhook; returns it and its secret (kept only encrypted)."""
    await check_url(url, settings.webhook_allow_private)
    if len(await mine(session, user_id)) >= MAX_PER_USER:
        raise InvalidInput(f"a user can have at most {MAX_PER_USER} webhooks")
    secret = signing.new_secret()
    hook = Webhook(
        user_id=user_id,
        url=url,
        events=sorted(set(events)),
        secret_encrypted=secret_box(settings).seal(secret),
    )
    session.add(hook)
    await session.commit()
    return hook, secret


async def mine(session: AsyncSession, user_id: int) -> list[Webhook]:
    query = select(Webhook).where(Webhook.user_id == user_id, Webhook.deleted_at.is_(None))
    return list(await session.scalars(query.order_by(Webhook.id)))


async def get(session: AsyncSession, webhook_id: int, user_id: int | None) -> Webhook:
    """A live webhook of the user's (any user's when ``user_id`` is None)."""
    hook = await session.get(Webhook, webhook_id)
    if hook is None or hook.deleted_at is not None or user_id not in (None, hook.user_id):
        raise NotFound(f"webhook {webhook_id} not found")
    return hook


async def delete(session: AsyncSession, hook: Webhook) -> None:
    """Deleted webhooks get nothing more: pending deliveries are dead-lettered when due."""
    hook.deleted_at = utcnow()
    await session.commit()


async def deliveries(
    session: AsyncSession, webhook_id: int, before: int | None, limit: int
) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
    if before is not None:
        query = query.where(WebhookDelivery.id < before)
    found = await session.scalars(query.order_by(WebhookDelivery.id.desc()).limit(limit))
    return list(found)
