"""Sign-up and the current user."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from pamtalk.api import auth
from pamtalk.api.db.models import Role, User
from pamtalk.api.deps import CurrentUser, DbDep, StateDep, get_optional_credential
from pamtalk.api.schemas.auth import UserCreate, UserPublic
from pamtalk.api.security import hash_password
from pamtalk.errors import Conflict, Forbidden

router = APIRouter(prefix="/v1/users", tags=["users"])

SELF_SERVICE_ROLES = {Role.farmer, Role.buyer}


async def optional_principal(
    state: StateDep,
    db: DbDep,
    credential: Annotated[str | None, Depends(get_optional_credential)],
) -> auth.Principal | None:
    if credential is None:
        return None
    return await auth.resolve(credential, cache=state.cache, db=db, settings=state.settings)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=UserPublic)
async def create_user(
    body: UserCreate,
    db: DbDep,
    caller: Annotated[auth.Principal | None, Depends(optional_principal)],
) -> User:
    """Anyone may sign up as a farmer or buyer; only an admin creates analysts and admins."""
    if body.role not in SELF_SERVICE_ROLES and (caller is None or caller.role != Role.admin):
        raise Forbidden(f"only an admin can create {body.role} accounts")
    if await db.scalar(select(User.id).where(User.email == body.email)) is not None:
        raise Conflict("a user with this email already exists")
    user = User(
        email=body.email,
        name=body.name,
        role=body.role,
        password_hash=await hash_password(body.password),
    )
    db.add(user)
    try:
        await db.commit()
    except IntegrityError as exc:  # a concurrent sign-up with the same email
        raise Conflict("a user with this email already exists") from exc
    return user


@router.get("/me", response_model=UserPublic)
async def me(user: CurrentUser, db: DbDep) -> User:
    return await db.get_one(User, user.id)
