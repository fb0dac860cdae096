"""Login sessions and API keys."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import select

from pamtalk.api import auth
from pamtalk.api.deps import (
    CacheDep,
    CurrentUser,
    DbDep,
    HashingDep,
    OptionalCredential,
    PathId,
    SecurityStoreDep,
    SettingsDep,
    WriteDbDep,
)
from pamtalk.api.ratelimit import client_address
from pamtalk.api.schemas.auth import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPublic,
    LoginRequest,
    SessionPublic,
    UserPublic,
)
from pamtalk.db.models import ApiKey, Role, User
from pamtalk.db.types import utcnow
from pamtalk.errors import NotFound, TooManyRequests, Unauthorized
from pamtalk.security import (
    API_KEY_PREFIX,
    HashingBusy,
    digest,
    new_api_key,
    new_session_token,
    shown_prefix,
)

router = APIRouter(prefix="/v1/auth", tags=["auth"])


@router.post("/login", response_model=SessionPublic)
async def login(
    body: LoginRequest,
    request: Request,
    db: DbDep,
    store: SecurityStoreDep,
    hashing: HashingDep,
    settings: SettingsDep,
) -> SessionPublic:
    """An opaque session token for ``Authorization: Bearer``, valid 30 minutes after its last
    use and at most 12 hours. In dev the demo users' password is ``pamtalk-demo`` (e.g.
    buyer1@pamtalk.local). Failed attempts are limited per account and per client address
    (429 with Retry-After once locked; docs/security.md)."""
    # Counted before the password is checked, atomically: concurrent guesses each take a
    # number, and only those within the limit are checked at all.
    counters = (
        (f"login-attempts:account:{digest(body.email)}", settings.login_max_failures_per_account),
        (
            f"login-attempts:address:{digest(client_address(request))}",
            settings.login_max_failures_per_address,
        ),
    )
    counts = [await store.incr(key, ttl=settings.login_lockout_s) for key, _ in counters]
    if any(count > limit for count, (_, limit) in zip(counts, counters, strict=True)):
        raise TooManyRequests(
            "too many failed logins for this account or address; try again later",
            headers={"Retry-After": str(settings.login_lockout_s)},
        )
    user = await db.scalar(select(User).where(User.email == body.email))
    # End the read before hashing: the connection goes back to the pool for the hash's
    # ~0.1-0.5 s.
    await db.commit()
    try:
        valid = await hashing.verify(user.password_hash if user else None, body.password)
    except HashingBusy:
        for key, _ in counters:  # not checked, so not an attempt
            await store.incr(key, ttl=settings.login_lockout_s, amount=-1)
        raise
    if user is None or not valid or not user.is_active:
        raise Unauthorized("email or password is wrong")
    # A success clears the account's count, and takes itself off the address's (which
    # counts failures).
    await store.delete(counters[0][0])
    await store.incr(counters[1][0], ttl=settings.login_lockout_s, amount=-1)
    token = new_session_token()
    await auth.start_session(store, settings, user, token)
    return SessionPublic(
        token=token, expires_in=settings.session_ttl, user=UserPublic.model_validate(user)
    )


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(
    user: CurrentUser, credential: OptionalCredential, store: SecurityStoreDep
) -> Response:
    """Ends a session; with an API key there is nothing to end (revoke the key instead)."""
    if credential and not credential.startswith(API_KEY_PREFIX):
        await auth.end_session(store, credential)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT)
async def logout_all(user: CurrentUser, store: SecurityStoreDep) -> Response:
    """Ends every session of yours, on every device (API keys stay: revoke those one by one)."""
    await auth.end_all_sessions(store, user.id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/api-keys", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated)
async def create_api_key(body: ApiKeyCreate, user: CurrentUser, db: WriteDbDep) -> ApiKeyCreated:
    """The key is shown once, in this response; only its hash is stored."""
    key = new_api_key()
    row = ApiKey(user_id=user.id, name=body.name, prefix=shown_prefix(key), key_hash=digest(key))
    db.add(row)
    await db.commit()
    return ApiKeyCreated.model_validate(
        {**ApiKeyPublic.model_validate(row).model_dump(), "key": key}
    )


@router.get("/api-keys", response_model=list[ApiKeyPublic])
async def list_api_keys(user: CurrentUser, db: DbDep) -> list[ApiKey]:
    """Your API keys (their names and prefixes; a key itself is shown only when created)."""
    rows = await db.scalars(select(ApiKey).where(ApiKey.user_id == user.id).order_by(ApiKey.id))
    return list(rows)


@router.delete("/api-keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_api_key(
    key_id: PathId, user: CurrentUser, db: WriteDbDep, cache: CacheDep
) -> Response:
    """Revoke one of your API keys (admins: anyone's); it stops working at once."""
    row = await db.get(ApiKey, key_id)
    if row is None or (row.user_id != user.id and user.role != Role.admin):
        raise NotFound(f"API key {key_id} not found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await db.commit()
    await auth.forget_api_key(cache, row.key_hash)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
