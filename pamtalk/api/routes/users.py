"""Sign-up and the current user."""

from __future__ import annotations

from fastapi import APIRouter, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from pamtalk.api.deps import CurrentUser, DbDep, OptionalUser
from pamtalk.api.schemas.auth import UserCreate, UserPublic
from pamtalk.db.models import Role, User
from pamtalk.errors import Conflict, Forbidden
from pamtalk.security import hash_password

router = APIRouter(prefix="/v1/users", tags=["users"])

SELF_SERVICE_ROLES = {Role.farmer, Role.buyer}


@router.post("", status_code=status.HTTP_201_CREATED, response_model=UserPublic)
async def create_user(
    body: UserCreate,
    db: DbDep,
    caller: OptionalUser,
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
    """The user the credential belongs to."""
    return await db.get_one(User, user.id)
