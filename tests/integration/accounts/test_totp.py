"""TOTP two-factor: enabled only with a matching code, verified once per code, turned off."""

from __future__ import annotations

import time

import pyotp
import pytest
from sqlalchemy import select

from agent_platform.db.session import transaction
from agent_platform.organization.login import MAX_FAILED_LOGINS, AccountLockedError, log_in
from agent_platform.organization.models import User
from agent_platform.organization.totp import (
    InvalidTotpError,
    disable_totp,
    enable_totp,
    new_enrollment,
    verify_totp,
)
from agent_platform.services import Services
from tests.integration.accounts.conftest import MakeMember, an_ip

STEP = 30


def code_at_step(secret: str, step: int) -> str:
    return pyotp.TOTP(secret).generate_otp(step)


def current_step() -> int:
    return int(time.time() // STEP)


async def _verify(services: Services, user_id: object, code: str) -> bool:
    async with transaction(services.sessions) as session:
        return await verify_totp(services, session, user_id, code)  # type: ignore[arg-type]


async def test_a_wrong_code_does_not_enable_totp(
    services: Services, make_member: MakeMember
) -> None:
    ann = await make_member()
    enrollment = new_enrollment(email=ann.email)
    wrong = code_at_step(enrollment.secret, current_step() + 5)
    with pytest.raises(InvalidTotpError) as refused:
        async with transaction(services.sessions) as session:
            await enable_totp(services, session, ann.user_id, enrollment.secret, wrong)
    assert refused.value.status_code == 422
    with pytest.raises(InvalidTotpError):
        async with transaction(services.sessions) as session:
            await enable_totp(services, session, ann.user_id, enrollment.secret, "12345x")
    async with transaction(services.sessions) as session:
        user = await session.get(User, ann.user_id)
    assert user is not None
    assert not user.totp_enabled
    assert user.totp_secret_encrypted is None


async def test_enabled_totp_is_asked_at_login_and_each_code_works_once(
    services: Services, make_member: MakeMember
) -> None:
    ann = await make_member()
    enrollment = new_enrollment(email=ann.email)
    step = current_step()
    async with transaction(services.sessions) as session:
        await enable_totp(
            services, session, ann.user_id, enrollment.secret, code_at_step(enrollment.secret, step)
        )
    async with transaction(services.sessions) as session:
        stored = await session.scalar(
            select(User.totp_secret_encrypted).where(User.id == ann.user_id)
        )
    assert stored is not None
    assert enrollment.secret not in stored  # encrypted at rest
    assert services.secrets.decrypt(stored) == enrollment.secret

    result = await log_in(services, email=ann.email, password=ann.password, ip=an_ip())
    assert result.needs_totp
    assert not result.needs_totp_setup

    # The code used to enable it is spent; the next step's code (clock drift) passes once.
    assert not await _verify(services, ann.user_id, code_at_step(enrollment.secret, step))
    following = code_at_step(enrollment.secret, step + 1)
    assert await _verify(services, ann.user_id, following)
    assert not await _verify(services, ann.user_id, following)
    # A code far from now never passes.
    assert not await _verify(services, ann.user_id, code_at_step(enrollment.secret, step + 10))


async def test_disabled_totp_verifies_nothing_and_is_not_asked(
    services: Services, make_member: MakeMember
) -> None:
    ann = await make_member()
    enrollment = new_enrollment(email=ann.email)
    step = current_step()
    async with transaction(services.sessions) as session:
        await enable_totp(
            services, session, ann.user_id, enrollment.secret, code_at_step(enrollment.secret, step)
        )
        await disable_totp(services, session, ann.user_id)
    assert not await _verify(services, ann.user_id, code_at_step(enrollment.secret, step + 1))
    result = await log_in(services, email=ann.email, password=ann.password, ip=an_ip())
    assert not result.needs_totp


async def test_wrong_codes_lock_the_account_like_wrong_passwords(
    services: Services, make_member: MakeMember
) -> None:
    ann = await make_member()
    enrollment = new_enrollment(email=ann.email)
    step = current_step()
    async with transaction(services.sessions) as session:
        await enable_totp(
            services, session, ann.user_id, enrollment.secret, code_at_step(enrollment.secret, step)
        )
    for offset in range(MAX_FAILED_LOGINS):
        assert not await _verify(
            services, ann.user_id, code_at_step(enrollment.secret, step + 10 + offset)
        )
    assert not await _verify(services, ann.user_id, code_at_step(enrollment.secret, step + 1))
    with pytest.raises(AccountLockedError):
        await log_in(services, email=ann.email, password=ann.password, ip=an_ip())
