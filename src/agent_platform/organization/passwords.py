"""Passwords: the policy a new password must meet, and argon2id hashing and verification."""

from __future__ import annotations

from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn  # type: ignore[import-untyped]

MIN_LENGTH = 12
MAX_LENGTH = 128
# zxcvbn's scale is 0..4; 3 is "safely unguessable" against an online attack with throttling.
MIN_STRENGTH = 3
# zxcvbn refuses longer input; a password whose first 72 characters are weak is weak.
_ZXCVBN_MAX_LENGTH = 72
# A local part shorter than this ("a@…") would refuse too many good passwords.
_MIN_LOCAL_PART = 3

# argon2-cffi's defaults: argon2id with the parameters RFC 9106 recommends for memory-hard use.
_hasher = PasswordHasher()


@dataclass(frozen=True)
class PasswordRefusal:
    """Which rule a password breaks (`too_short`, `too_long`, `contains_email`, `too_weak`),
    for a page to say in its reader's language, and `message`, in English, for the API."""

    rule: str
    message: str


def password_refusal(password: str, *, email: str = "", name: str = "") -> PasswordRefusal | None:
    """None when `password` is acceptable; otherwise the rule it breaks."""
    if len(password) < MIN_LENGTH:
        return PasswordRefusal(
            "too_short", f"The password must be at least {MIN_LENGTH} characters long."
        )
    if len(password) > MAX_LENGTH:
        return PasswordRefusal(
            "too_long", f"The password must be at most {MAX_LENGTH} characters long."
        )
    local_part = email.partition("@")[0].strip().lower()
    if len(local_part) >= _MIN_LOCAL_PART and local_part in password.lower():
        return PasswordRefusal(
            "contains_email", "The password must not contain your email address."
        )
    user_inputs = [value for value in (email, local_part, name, *name.split()) if value]
    verdict = zxcvbn(password[:_ZXCVBN_MAX_LENGTH], user_inputs=user_inputs)
    if verdict["score"] < MIN_STRENGTH:
        warning = verdict["feedback"].get("warning") or "It would be easy to guess."
        return PasswordRefusal("too_weak", f"The password is too weak: {warning}")
    return None


def password_problem(password: str, *, email: str = "", name: str = "") -> str | None:
    """None when `password` is acceptable; otherwise what is wrong with it, in English."""
    refusal = password_refusal(password, email=email, name=name)
    return None if refusal is None else refusal.message


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """Whether `password` matches; argon2 compares in constant time. A malformed hash is False."""
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with weaker parameters than today's: rehash after login."""
    return _hasher.check_needs_rehash(password_hash)


# Verified when the email is unknown, so that a refusal takes as long either way.
DUMMY_PASSWORD_HASH = hash_password("not a real password: evens out the time of a refusal")
