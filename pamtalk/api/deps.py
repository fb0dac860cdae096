"""Request dependencies, as ``Annotated`` aliases the routes declare."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Path, Request, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.api import auth, context, ratelimit
from pamtalk.api.schemas.common import MAX_ID
from pamtalk.api.state import AppState
from pamtalk.cache import Cache
from pamtalk.db.models import Role
from pamtalk.errors import Forbidden, Unauthorized
from pamtalk.security import PasswordHashing
from pamtalk.serving.service import PredictorService
from pamtalk.settings import Settings


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.pamtalk
    return state


# Plain dependencies are async on purpose: FastAPI runs a sync one in the thread pool.
StateDep = Annotated[AppState, Depends(get_state)]


async def get_settings(state: StateDep) -> Settings:
    return state.settings


async def get_cache(state: StateDep) -> Cache:
    return state.cache


async def get_predictor(state: StateDep) -> PredictorService:
    return state.predictor


async def get_security_store(state: StateDep) -> Cache:
    return state.security


async def get_hashing(state: StateDep) -> PasswordHashing:
    return state.hashing


async def get_db(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessions.read() as session:
        yield session


async def get_write_db(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessions.write() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
CacheDep = Annotated[Cache, Depends(get_cache)]
PredictorDep = Annotated[PredictorService, Depends(get_predictor)]
SecurityStoreDep = Annotated[Cache, Depends(get_security_store)]
HashingDep = Annotated[PasswordHashing, Depends(get_hashing)]
# A route reads through DbDep; one that writes declares WriteDbDep for its writes (both if
# it reads first and may not write): on SQLite only a write session takes the write lock, and
# a write through DbDep fails (pamtalk/db/session.py). Neither opens a transaction unused.
DbDep = Annotated[AsyncSession, Depends(get_db)]
WriteDbDep = Annotated[AsyncSession, Depends(get_write_db)]


# Declared as security schemes, so OpenAPI (and /docs' Authorize button) knows both.
_bearer = HTTPBearer(
    auto_error=False, description="session token from /v1/auth/login, or an API key"
)
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="API key for apps")


async def get_optional_credential(
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> str | None:
    if api_key:
        return api_key.strip()[:512]
    return bearer.credentials.strip()[:512] if bearer else None


OptionalCredential = Annotated[str | None, Depends(get_optional_credential)]


async def get_optional_principal(
    credential: OptionalCredential, state: StateDep, db: DbDep, request: Request, response: Response
) -> auth.Principal | None:
    """The caller, if credentials were sent; invalid credentials are a 401 all the same.
    Each authenticated request counts against its user's rate limit (predictions in their
    own bucket)."""
    if not credential:
        return None
    principal = await auth.resolve(
        credential, cache=state.cache, store=state.security, db=db, settings=state.settings
    )
    ctx = context.current.get()
    if ctx is not None:
        ctx.user_id = principal.id
    state.active_users.seen(principal.id, time.monotonic())
    scope = ratelimit.scope_of(request.url.path)
    response.headers.update(await state.rate_limits.hit(scope, str(principal.id)))
    return principal


OptionalUser = Annotated[auth.Principal | None, Depends(get_optional_principal)]


async def get_principal(principal: OptionalUser) -> auth.Principal:
    if principal is None:
        raise Unauthorized(
            "authentication required: send 'Authorization: Bearer <session token>' "
            "or 'X-API-Key: <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return principal


CurrentUser = Annotated[auth.Principal, Depends(get_principal)]


def require_roles(*roles: Role) -> Callable[..., Coroutine[Any, Any, auth.Principal]]:
    allowed = ", ".join(roles)

    async def check(user: CurrentUser) -> auth.Principal:
        if user.role not in roles:
            raise Forbidden(f"this action needs one of the roles: {allowed}")
        return user

    return check


Admin = Annotated[auth.Principal, Depends(require_roles(Role.admin))]
FarmWriter = Annotated[auth.Principal, Depends(require_roles(Role.farmer, Role.admin))]
TransactionWriter = Annotated[auth.Principal, Depends(require_roles(Role.buyer, Role.admin))]
# Model management: admins and analysts (the data-scientist role).
ModelManager = Annotated[auth.Principal, Depends(require_roles(Role.admin, Role.analyst))]

# Path ids are bounded so that an absurd id is a 422, not a database overflow.
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
