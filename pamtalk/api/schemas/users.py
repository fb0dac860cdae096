"""The answer to a self-service sign-up: the same whether or not the email was free."""

from __future__ import annotations

from pydantic import Field

from pamtalk.api.schemas.common import Schema

SIGN_UP_MESSAGE = (
    "if no account had this email yet, it has been created and you can log in now; an "
    "existing account is left unchanged"
)


class SignUpAccepted(Schema):
    """Says nothing of whether the email was registered before: the same status, shape and
    (one password hash either way) time for a new and a taken email."""

    email: str = Field(description="the email as stored (lower case, trimmed)")
    message: str = Field(examples=[SIGN_UP_MESSAGE])
