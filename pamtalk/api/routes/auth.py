"""Login sessions and API keys."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import select

from pamtalk.api import auth
from pamtalk.api.deps import CacheDep, CurrentUser, DbDep, OptionalCredential, PathId, SettingsDep
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
    digest,
    new_api_key,
    new_session_token,
    shown_prefix,
    verify_password,
)

router = APIRouter(prefix="/v1/auth", tags=["auth"])


# Failed logins allowed per account and client address before a pause (password guessing).
MAX_LOGIN_FAILURES = 10
LOGIN_FAILURE_WINDOW = 900


@router.post("/login", response_model=SessionPublic)
async def login(
    body: LoginRequest, request: Request, db: DbDep, cache: CacheDep, settings: SettingsDep
) -> SessionPublic:
    """An opaque session token for ``Authorization: Bearer``, valid 30 minutes after its last
    use. In dev the demo users' password is ``pamtalk-demo`` (e.g. buyer1@pamtalk.local)."""
    client = request.client.host if request.client else "-"
    failures_key = f"login-failures:{digest(f'{body.email}|{client}')}"
    if int(await cache.get(failures_key) or 0) >= MAX_LOGIN_FAILURES:
        raise TooManyRequests(
            "too many failed logins; try again later",
            headers={"Retry-After": str(LOGIN_FAILURE_WINDOW)},
        )
    user = await db.scalar(select(User).where(User.email == body.email))
    valid = await verify_password(user.password_hash if user else None, body.password)
    if user is None or not valid or not user.is_active:
        await cache.incr(failures_key, ttl=LOGIN_FAILURE_WINDOW)
        raise Unauthorized("email or password is wrong")
    await cache.delete(failures_key)
    token = new_session_token()
    await auth.start_session(cache, settings, user, token)
    return SessionPublic(
        token=token, expires_in=settings.session_ttl, user=UserPublic.model_validate(user)
    )


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(user: CurrentUser, credential: OptionalCredential, cache: CacheDep) -> Response:
    """Ends a session; with an API key there is nothing to end (revoke the key instead)."""
    if credential and not credential.startswith(API_KEY_PREFIX):
        await auth.end_session(cache, credential)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/api-keys", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated)
async def create_api_key(body: ApiKeyCreate, user: CurrentUser, db: DbDep) -> ApiKeyCreated:
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
async def revoke_api_key(key_id: PathId, user: CurrentUser, db: DbDep, cache: CacheDep) -> Response:
    """Revoke one of your API keys (admins: anyone's); it stops working at once."""
    row = await db.get(ApiKey, key_id)
    if row is None or (row.user_id != user.id and user.role != Role.admin):
        raise NotFound(f"API key {key_id} not found")
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        await db.commit()
    await auth.forget_api_key(cache, row.key_hash)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
