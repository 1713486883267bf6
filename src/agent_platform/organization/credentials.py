"""Password hashes (argon2id) and API keys (shown once, stored as a hash)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher

_hasher = PasswordHasher()

API_KEY_PREFIX = "ap"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


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
