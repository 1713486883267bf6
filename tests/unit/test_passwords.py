"""The password policy and argon2id hashing."""

from __future__ import annotations

from argon2 import PasswordHasher
from hypothesis import given
from hypothesis import strategies as st

from agent_platform.organization.passwords import (
    MAX_LENGTH,
    MIN_LENGTH,
    hash_password,
    needs_rehash,
    password_problem,
    verify_password,
)

STRONG = "violet-Harbor-93-quietly-lemons"


def test_a_long_uncommon_password_is_accepted() -> None:
    assert password_problem(STRONG, email="ann@example.com", name="Ann Lee") is None


def test_a_short_password_is_refused() -> None:
    problem = password_problem("xK9#vq2!Lm", email="ann@example.com")
    assert problem is not None
    assert str(MIN_LENGTH) in problem


def test_an_overlong_password_is_refused() -> None:
    problem = password_problem("vK9#q2!Lm-" * 13)
    assert problem is not None
    assert str(MAX_LENGTH) in problem


def test_a_commonly_used_password_is_refused() -> None:
    for common in ("password1234", "qwertyuiop123", "123456789012", "iloveyou1234"):
        assert "too weak" in (password_problem(common) or ""), common


def test_a_password_with_the_email_local_part_is_refused() -> None:
    problem = password_problem("annabelle-Harbor-93-lemons", email="Annabelle@example.com")
    assert problem == "The password must not contain your email address."


def test_the_user_name_counts_against_the_strength() -> None:
    assert password_problem("Zbigniewski2024", name="Zbigniewski") is not None


@given(st.text(max_size=MIN_LENGTH - 1))
def test_nothing_shorter_than_the_minimum_is_accepted(password: str) -> None:
    assert password_problem(password) is not None


def test_verification_accepts_the_password_and_refuses_others() -> None:
    stored = hash_password(STRONG)
    assert stored.startswith("$argon2id$")
    assert verify_password(stored, STRONG)
    assert not verify_password(stored, STRONG + "x")
    assert not verify_password("not a hash", STRONG)


def test_a_hash_with_weaker_parameters_needs_a_rehash() -> None:
    assert not needs_rehash(hash_password(STRONG))
    weak = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(STRONG)
    assert verify_password(weak, STRONG)
    assert needs_rehash(weak)
