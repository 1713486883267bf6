"""Encryption of secrets at rest (Kommo tokens, LLM keys) with a key derived from ENCRYPTION_KEY."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class DecryptionError(Exception):
    """A stored value could not be decrypted with the current or the previous key."""


def _fernet(secret: str) -> Fernet:
    # Fernet wants 32 url-safe base64 bytes; ENCRYPTION_KEY is any string of 32+ characters.
    digest = hashlib.sha256(b"agent-platform:fernet:" + secret.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


class SecretBox:
    """Encrypts with the current key; decrypts with it or, during a rotation, the previous one."""

    def __init__(self, key: str, previous_key: str | None = None) -> None:
        self._current = _fernet(key)
        self._fernet = MultiFernet(
            [self._current] + ([_fernet(previous_key)] if previous_key else [])
        )

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise DecryptionError("value was encrypted with a key we do not have") from exc

    def is_current(self, token: str) -> bool:
        """Whether the current key alone decrypts `token`: a key rotation leaves it as it is."""
        try:
            self._current.decrypt(token.encode())
        except InvalidToken:
            return False
        return True
