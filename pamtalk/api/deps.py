"""Request dependencies, as ``Annotated`` aliases the routes declare."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Header, Path, Request
from sqlalchemy.ext.asyncio import AsyncSession

from pamtalk.api import auth, context
from pamtalk.api.cache import Cache
from pamtalk.api.db.models import Role
from pamtalk.api.schemas.common import MAX_ID
from pamtalk.api.state import AppState
from pamtalk.errors import Forbidden, Unauthorized
from pamtalk.settings import Settings


def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.pamtalk
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def get_settings(state: StateDep) -> Settings:
    return state.settings


def get_cache(state: StateDep) -> Cache:
    return state.cache


async def get_db(state: StateDep) -> AsyncIterator[AsyncSession]:
    async with state.sessions() as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_settings)]
CacheDep = Annotated[Cache, Depends(get_cache)]
DbDep = Annotated[AsyncSession, Depends(get_db)]


def credential_from(authorization: str | None, api_key: str | None) -> str | None:
    if api_key:
        return api_key.strip()
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        raise Unauthorized("Authorization header must be 'Bearer <token>'")
    return None


async def get_credential(
    authorization: Annotated[str | None, Header(max_length=512)] = None,
    x_api_key: Annotated[str | None, Header(max_length=512)] = None,
) -> str:
    credential = credential_from(authorization, x_api_key)
    if credential is None:
        raise Unauthorized(
            "authentication required: send 'Authorization: Bearer <session token>' "
            "or 'X-API-Key: <key>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return credential


CredentialDep = Annotated[str, Depends(get_credential)]


async def get_principal(credential: CredentialDep, state: StateDep, db: DbDep) -> auth.Principal:
    principal = await auth.resolve(credential, cache=state.cache, db=db, settings=state.settings)
    ctx = context.current.get()
    if ctx is not None:
        ctx.user_id = principal.id
    state.active_users.seen(principal.id, time.monotonic())
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

# Path ids are bounded so that an absurd id is a 422, not a database overflow.
PathId = Annotated[int, Path(ge=1, le=MAX_ID)]
