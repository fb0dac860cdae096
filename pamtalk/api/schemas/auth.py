"""Users, login sessions and API keys."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, StringConstraints

from pamtalk.api.schemas.common import Name, Schema, single_line, storable
from pamtalk.db.models import Role

Email = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        max_length=254,
        pattern=r"^[^@\s\x00]+@[^@\s\x00]+\.[^@\s\x00]+$",
    ),
    AfterValidator(single_line),
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=128), AfterValidator(storable)]


class UserCreate(Schema):
    email: Email
    name: Name
    password: Password
    role: Role = Role.buyer


class UserPublic(Schema):
    id: int
    email: str
    name: str
    role: Role
    created_at: datetime


class UserUpdate(Schema):
    """An admin's change to a user; fields left out stay as they are."""

    role: Role | None = None
    is_active: bool | None = None


class UserAdminView(UserPublic):
    is_active: bool


class LoginRequest(Schema):
    email: Email
    password: Annotated[str, StringConstraints(max_length=128)]


class SessionPublic(Schema):
    token: str
    token_type: str = "bearer"
    expires_in: int
    user: UserPublic


class ApiKeyCreate(Schema):
    name: Name


class ApiKeyPublic(Schema):
    id: int
    name: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str
