"""Who is calling: resolves a session token or API key to a Principal."""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass

import orjson
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.cache import Cache, CacheUnavailable
from pamtalk.db.models import ApiKey, Role, User
from pamtalk.errors import Unauthorized
from pamtalk.security import API_KEY_PREFIX, digest
from pamtalk.settings import Settings

log = logging.getLogger(__name__)

SESSION_NS = "session"
API_KEY_NS = "auth:key"


@dataclass(frozen=True, slots=True)
class Principal:
    id: int
    role: Role
    email: str
    name: str

    @classmethod
    def of(cls, user: User) -> Principal:
        return cls(user.id, user.role, user.email, user.name)

    def dumps(self) -> bytes:
        return orjson.dumps(asdict(self))

    @classmethod
    def loads(cls, raw: bytes) -> Principal:
        data = orjson.loads(raw)
        return cls(data["id"], Role(data["role"]), data["email"], data["name"])


async def start_session(cache: Cache, settings: Settings, user: User, token: str) -> None:
    await cache.set(
        f"{SESSION_NS}:{digest(token)}", Principal.of(user).dumps(), settings.session_ttl
    )


async def end_session(cache: Cache, token: str) -> None:
    await cache.delete(f"{SESSION_NS}:{digest(token)}")


async def resolve(
    credential: str, *, cache: Cache, db: AsyncSession, settings: Settings
) -> Principal:
    """A session token or an API key. Keys we issue carry a prefix; a bootstrap key
    (PAMTALK_ADMIN_API_KEY) may not, so a token that is no session is tried as a key."""
    if credential.startswith(API_KEY_PREFIX):
        return await _resolve_api_key(credential, cache=cache, db=db, settings=settings)
    unavailable: CacheUnavailable | None = None
    try:
        # Each use of a session slides its expiry forward.
        raw = await cache.get_and_touch(f"{SESSION_NS}:{digest(credential)}", settings.session_ttl)
    except CacheUnavailable as exc:
        raw, unavailable = None, exc
    if raw is not None:
        return Principal.loads(raw)
    try:
        return await _resolve_api_key(credential, cache=cache, db=db, settings=settings)
    except Unauthorized:
        # Sessions live only in the cache: without it we cannot tell, which is a 503.
        if unavailable is not None:
            raise unavailable from None
        raise Unauthorized("session expired or invalid; log in again") from None


async def _resolve_api_key(
    key: str, *, cache: Cache, db: AsyncSession, settings: Settings
) -> Principal:
    cache_key = f"{API_KEY_NS}:{digest(key)}"
    try:
        raw = await cache.get(cache_key)
    except CacheUnavailable:
        raw = None
    if raw is not None:
        return Principal.loads(raw)
    row = (
        await db.execute(
            select(User)
            .join(ApiKey, ApiKey.user_id == User.id)
            .where(
                ApiKey.key_hash == digest(key),
                ApiKey.revoked_at.is_(None),
                User.is_active.is_(True),
            )
        )
    ).scalar_one_or_none()
    if row is None:
        raise Unauthorized("invalid or revoked API key")
    principal = Principal.of(row)
    # End the read so the connection returns to the pool now, not after the request (which
    # may wait on a model for a while).
    await db.commit()
    with contextlib.suppress(CacheUnavailable):
        await cache.set(cache_key, principal.dumps(), settings.api_key_ttl)
    return principal


async def forget_api_key(cache: Cache, key_hash: str) -> None:
    try:
        await cache.delete(f"{API_KEY_NS}:{key_hash}")
    except CacheUnavailable:
        # The revocation is committed; a cached copy, if Redis kept one, lapses on its TTL.
        log.error("could not evict revoked API key %s from the cache", key_hash[:8])
