"""Sign-up, the current user, and admins' changes to a user's role and standing."""

from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from pamtalk.api import auth
from pamtalk.api.deps import (
    Admin,
    CacheDep,
    CurrentUser,
    DbDep,
    HashingDep,
    OptionalUser,
    PathId,
    SecurityStoreDep,
    WriteDbDep,
)
from pamtalk.api.responses import JSONResponse
from pamtalk.api.schemas.auth import UserAdminView, UserCreate, UserPublic, UserUpdate
from pamtalk.api.schemas.users import SIGN_UP_MESSAGE, SignUpAccepted
from pamtalk.db.models import Role, User
from pamtalk.errors import Conflict, Forbidden, NotFound

router = APIRouter(prefix="/v1/users", tags=["users"])

SELF_SERVICE_ROLES = {Role.farmer, Role.buyer}


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=UserPublic,
    responses={
        202: {"model": SignUpAccepted, "description": "a self-service sign-up, taken or not"}
    },
)
async def create_user(
    body: UserCreate,
    db: WriteDbDep,
    caller: OptionalUser,
    hashing: HashingDep,
) -> Response:
    """Anyone may sign up as a farmer or buyer: 202, the same answer whether or not the
    email is registered already (an existing account is left unchanged), so sign-up does
    not tell who has an account. Only an admin creates analysts and admins: 201 with the
    user, 409 for a taken email."""
    by_admin = caller is not None and caller.role == Role.admin
    if body.role not in SELF_SERVICE_ROLES and not by_admin:
        raise Forbidden(f"only an admin can create {body.role} accounts")
    # Hashed whether or not the email is taken: a taken one answers as slowly as a new one.
    password_hash = await hashing.hash(body.password)
    taken = await db.scalar(select(User.id).where(User.email == body.email)) is not None
    user = User(email=body.email, name=body.name, role=body.role, password_hash=password_hash)
    if not taken:
        db.add(user)
        try:
            await db.commit()
        except IntegrityError:  # a concurrent sign-up with the same email
            await db.rollback()
            taken = True
    if by_admin:
        if taken:
            raise Conflict("a user with this email already exists")
        created = UserPublic.model_validate(user).model_dump(mode="json")
        return JSONResponse(created, status_code=status.HTTP_201_CREATED)
    accepted = SignUpAccepted(email=body.email, message=SIGN_UP_MESSAGE)
    return JSONResponse(accepted.model_dump(), status_code=status.HTTP_202_ACCEPTED)


@router.get("/me", response_model=UserPublic)
async def me(user: CurrentUser, db: DbDep) -> User:
    """The user the credential belongs to."""
    return await db.get_one(User, user.id)


@router.patch("/{user_id}", response_model=UserAdminView)
async def update_user(
    user_id: PathId,
    body: UserUpdate,
    admin: Admin,
    db: WriteDbDep,
    cache: CacheDep,
    store: SecurityStoreDep,
) -> User:
    """Admins change a user's role or deactivate (``is_active: false``) or reactivate them.
    A change ends all the user's sessions and drops their API keys' cached identity, so it
    holds from the next request on (the keys of a deactivated user stop working)."""
    user = await db.get(User, user_id)
    if user is None:
        raise NotFound(f"user {user_id} not found")
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if user.id == admin.id and (
        changes.get("role", Role.admin) != Role.admin or changes.get("is_active") is False
    ):
        raise Forbidden("admins cannot demote or deactivate themselves")
    changed = any(getattr(user, field) != value for field, value in changes.items())
    for field, value in changes.items():
        setattr(user, field, value)
    await db.commit()
    if changed:
        await auth.revoke_user(cache, store, db, user.id)
    return user
