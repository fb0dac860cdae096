"""Credentials: Argon2id passwords, hashed API keys, opaque session tokens."""

from __future__ import annotations

import hashlib
import secrets

from anyio import to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# RFC 9106's second recommended profile (64 MiB, t=3, p=4): memory-hard, ~50 ms here.
_hasher = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4)
# Verified against when the user does not exist, so timing does not reveal which emails exist.
_DUMMY_HASH = _hasher.hash("pamtalk-timing-equaliser")

API_KEY_PREFIX = "pt_"


def hash_password_sync(password: str) -> str:
    return _hasher.hash(password)


async def hash_password(password: str) -> str:
    # Argon2 is CPU- and memory-bound; keep it off the event loop.
    return await to_thread.run_sync(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    def verify() -> bool:
        try:
            return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
        except (VerificationError, InvalidHashError):
            return False

    return await to_thread.run_sync(verify)


def digest(secret: str) -> str:
    """SHA-256 of a high-entropy secret (API key, session token): the only form stored."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


# A key's listed prefix shows this many of its secret characters (after the pt_ marker), so
# that a listing or a leaked database row tells an attacker next to nothing about the key.
SHOWN_KEY_CHARS = 4


def shown_prefix(key: str) -> str:
    """What listings show of a key: its pt_ marker, if any, and its first 4 secret characters."""
    marker = API_KEY_PREFIX if key.startswith(API_KEY_PREFIX) else ""
    return marker + key[len(marker) : len(marker) + SHOWN_KEY_CHARS]


def new_session_token() -> str:
    return secrets.token_urlsafe(32)
