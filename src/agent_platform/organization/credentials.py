"""Password hashes (argon2id, see organization.passwords) and API keys (shown once, hashed)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from agent_platform.organization.passwords import hash_password

__all__ = ["API_KEY_PREFIX", "NewApiKey", "hash_api_key", "hash_password", "new_api_key"]

API_KEY_PREFIX = "ap"


@dataclass(frozen=True)
class NewApiKey:
    plaintext: str  # given to the user once, never stored
    prefix: str
    key_hash: str


def hash_api_key(plaintext: str) -> str:
    # API keys are long random strings, so a fast hash is enough (unlike passwords).
    return hashlib.sha256(plaintext.encode()).hexdigest()


def new_api_key() -> NewApiKey:
    prefix = secrets.token_hex(6)
    plaintext = f"{API_KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(32)}"
    return NewApiKey(plaintext=plaintext, prefix=prefix, key_hash=hash_api_key(plaintext))
