"""Secrets kept at rest, encrypted (webhook secrets): Fernet (AES-128-CBC with an
HMAC-SHA256 tag, from ``cryptography``) under a 32-byte key per purpose
(``Settings.signing_keys``), so that a database dump does not reveal them.

Tokens are encrypted under the first key and read under any of them: after a change of
PAMTALK_SECRET_KEY, secrets sealed under the old one stay readable while
PAMTALK_SECRET_KEY_PREVIOUS holds it. Without it they cannot be read at all.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class UnreadableSecret(ValueError):
    """A token that none of the keys opens: encrypted under another secret key, or altered."""


class SecretBox:
    def __init__(self, keys: Sequence[bytes]) -> None:
        if not keys:
            raise ValueError("a SecretBox needs at least one key")
        self._fernet = MultiFernet([Fernet(base64.urlsafe_b64encode(key)) for key in keys])

    def seal(self, secret: str) -> str:
        return self._fernet.encrypt(secret.encode()).decode()

    def open(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise UnreadableSecret(
                "the secret cannot be decrypted: it was encrypted under another "
                "PAMTALK_SECRET_KEY (set PAMTALK_SECRET_KEY_PREVIOUS to it) or altered"
            ) from exc
