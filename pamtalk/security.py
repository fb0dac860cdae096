"""Credentials: Argon2id passwords, hashed API keys, opaque session tokens."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
from collections.abc import AsyncIterator

from anyio import to_thread
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from pamtalk.errors import ServiceUnavailable

# RFC 9106's second recommended profile (64 MiB, t=3, p=4): memory-hard, ~50 ms here.
_hasher = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=4)
# Verified against when the user does not exist, so timing does not reveal which emails exist.
_DUMMY_HASH = _hasher.hash("pamtalk-timing-equaliser")

API_KEY_PREFIX = "pt_"


def hash_password_sync(password: str) -> str:
    return _hasher.hash(password)


class HashingBusy(ServiceUnavailable):
    """Every Argon2 slot stayed taken for the whole wait. A 503, not a 429: it is this
    worker's capacity that ran out, whoever caused it (the same answer as the admission
    limit's), and a balancer may retry it on another worker; the callers' own excess is
    answered by the rate limits' 429s before a request gets this far."""

    code = "busy"


class PasswordHashing:
    """Argon2id off the event loop, at most ``concurrency`` at once. Each hash takes 64 MiB
    and up to 4 cores for ~50 ms, so without a cap a burst of logins or sign-ups takes every
    core from every other request; beyond the cap a caller waits at most ``wait_s`` for a
    slot, then gets a fast ``HashingBusy`` instead of joining a queue."""

    def __init__(self, concurrency: int, wait_s: float) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._wait_s = wait_s

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Holds one of the slots (a hash runs inside it)."""
        try:
            async with asyncio.timeout(self._wait_s):
                await self._slots.acquire()
        except TimeoutError:
            raise HashingBusy(
                "the server is busy checking passwords; retry in a second",
                headers={"Retry-After": "1"},
            ) from None
        try:
            yield
        finally:
            self._slots.release()

    async def hash(self, password: str) -> str:
        async with self.slot():
            return await to_thread.run_sync(_hasher.hash, password)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Whether ``password`` matches; with no hash (no such user) the dummy one is checked,
        so that the answer takes as long either way."""

        def verify() -> bool:
            try:
                return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(
                    password_hash
                )
            except (VerificationError, InvalidHashError):
                return False

        async with self.slot():
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
