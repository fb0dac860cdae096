"""Who is calling: resolves a session token or API key to a Principal.

Sessions live in the security store (``AppState.security``), apart from cached responses,
so that no amount of cached pages evicts them. A session ends ``session_ttl`` s after its
last use or ``session_max_age_s`` s after its login, whichever comes first. Each user's
sessions are indexed (a set of token digests per user), so that a role change, a
deactivation or "log out everywhere" ends all of them at once.
"""

from __future__ import annotations

import contextlib
import logging
import time
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
SESSION_INDEX_NS = "sessions-of"
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


async def start_session(store: Cache, settings: Settings, user: User, token: str) -> None:
    token_digest = digest(token)
    # Indexed first: a session that exists is always in its user's index.
    await store.add_member(
        f"{SESSION_INDEX_NS}:{user.id}", token_digest, settings.session_max_age_s
    )
    record = {"principal": orjson.loads(Principal.of(user).dumps()), "issued": time.time()}
    await store.set(f"{SESSION_NS}:{token_digest}", orjson.dumps(record), settings.session_ttl)


async def end_session(store: Cache, token: str) -> None:
    await store.delete(f"{SESSION_NS}:{digest(token)}")


async def end_all_sessions(store: Cache, user_id: int) -> int:
    """Ends every session of the user (the ones already expired included); how many."""
    digests = await store.take_members(f"{SESSION_INDEX_NS}:{user_id}")
    for token_digest in digests:
        await store.delete(f"{SESSION_NS}:{token_digest}")
    return len(digests)


def _live_session(raw: bytes, settings: Settings) -> Principal | None:
    """The session's principal, unless it is past its absolute lifetime (or unreadable)."""
    try:
        record = orjson.loads(raw)
        issued = float(record["issued"])
        principal = Principal.loads(orjson.dumps(record["principal"]))
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None
    return principal if time.time() - issued < settings.session_max_age_s else None


async def resolve(
    credential: str, *, cache: Cache, store: Cache, db: AsyncSession, settings: Settings
) -> Principal:
    """A session token or an API key. Keys we issue carry a prefix; a bootstrap key
    (PAMTALK_ADMIN_API_KEY) may not, so a token that is no session is tried as a key."""
    if credential.startswith(API_KEY_PREFIX):
        return await _resolve_api_key(credential, cache=cache, db=db, settings=settings)
    unavailable: CacheUnavailable | None = None
    session_key = f"{SESSION_NS}:{digest(credential)}"
    try:
        # Each use of a session slides its expiry forward.
        raw = await store.get_and_touch(session_key, settings.session_ttl)
    except CacheUnavailable as exc:
        raw, unavailable = None, exc
    if raw is not None:
        if (principal := _live_session(raw, settings)) is not None:
            return principal
        with contextlib.suppress(CacheUnavailable):
            await store.delete(session_key)
        raise Unauthorized("session expired or invalid; log in again")
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


async def revoke_user(cache: Cache, store: Cache, db: AsyncSession, user_id: int) -> None:
    """After a role change or deactivation: the user's sessions end and their API keys'
    cached principals are dropped, so the next request reads the user afresh."""
    await end_all_sessions(store, user_id)
    hashes = await db.scalars(select(ApiKey.key_hash).where(ApiKey.user_id == user_id))
    for key_hash in hashes:
        await forget_api_key(cache, key_hash)


async def forget_api_key(cache: Cache, key_hash: str) -> None:
    try:
        await cache.delete(f"{API_KEY_NS}:{key_hash}")
    except CacheUnavailable:
        # The revocation is committed; a cached copy, if Redis kept one, lapses on its TTL.
        log.error("could not evict revoked API key %s from the cache", key_hash[:8])
