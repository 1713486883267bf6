"""Signing in: success, refusals that reveal nothing, lockout and its end, the per-address limit."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis
from sqlalchemy import update

from agent_platform.db.session import transaction
from agent_platform.organization.login import (
    FAILURE_WINDOW,
    LOCKOUT,
    MAX_ATTEMPTS_PER_IP,
    AccountLockedError,
    LoginRefusedError,
    TooManyLoginAttemptsError,
    log_in,
)
from agent_platform.organization.models import Role, User
from agent_platform.services import Services
from agent_platform.services import open_services as open_platform_services
from tests.integration.accounts.conftest import MakeMember, an_ip


async def test_the_right_password_signs_in(services: Services, make_member: MakeMember) -> None:
    ann = await make_member(role=Role.MEMBER)
    result = await log_in(
        services, email=f"  {ann.email.upper()} ", password=ann.password, ip=an_ip()
    )
    assert result.user_id == ann.user_id
    assert result.organization_id == ann.organization_id
    assert result.role == "member"
    assert not result.needs_totp
    assert not result.needs_totp_setup


async def test_an_unknown_email_and_a_wrong_password_are_refused_alike(
    services: Services, make_member: MakeMember
) -> None:
    ann = await make_member()
    with pytest.raises(LoginRefusedError) as wrong_password:
        await log_in(services, email=ann.email, password="not-the-password-1", ip=an_ip())
    with pytest.raises(LoginRefusedError) as unknown_email:
        await log_in(services, email="nobody@example.com", password=ann.password, ip=an_ip())
    assert wrong_password.value.message == unknown_email.value.message
    assert wrong_password.value.status_code == unknown_email.value.status_code == 401
    assert "email" not in (wrong_password.value.details or {})


async def test_a_deactivated_user_is_refused_as_if_unknown(
    services: Services, make_member: MakeMember
) -> None:
    ann = await make_member()
    async with transaction(services.sessions) as session:
        await session.execute(update(User).where(User.id == ann.user_id).values(is_active=False))
    with pytest.raises(LoginRefusedError):
        await log_in(services, email=ann.email, password=ann.password, ip=an_ip())


async def test_five_failures_lock_the_account_until_the_lockout_ends(
    services: Services, make_member: MakeMember
) -> None:
    ann = await make_member()
    start = datetime.now(UTC)
    for attempt in range(4):
        with pytest.raises(LoginRefusedError):
            await log_in(
                services,
                email=ann.email,
                password="wrong-password-xyz",
                ip=an_ip(),
                now=start + timedelta(minutes=attempt),
            )
    fifth = start + timedelta(minutes=4)
    with pytest.raises(AccountLockedError) as locked:
        await log_in(
            services, email=ann.email, password="wrong-password-xyz", ip=an_ip(), now=fifth
        )
    assert locked.value.status_code == 429
    assert locked.value.until == fifth + LOCKOUT
    # While locked, even the right password is turned away.
    with pytest.raises(AccountLockedError):
        await log_in(
            services,
            email=ann.email,
            password=ann.password,
            ip=an_ip(),
            now=fifth + LOCKOUT - timedelta(seconds=1),
        )
    result = await log_in(
        services, email=ann.email, password=ann.password, ip=an_ip(), now=fifth + LOCKOUT
    )
    assert result.user_id == ann.user_id
    async with transaction(services.sessions) as session:
        user = await session.get(User, ann.user_id)
        assert user is not None
        assert (user.failed_login_count, user.locked_until) == (0, None)


async def test_failures_spread_over_more_than_the_window_do_not_lock(
    services: Services, make_member: MakeMember
) -> None:
    ann = await make_member()
    start = datetime.now(UTC)
    for attempt in range(8):
        with pytest.raises(LoginRefusedError):
            await log_in(
                services,
                email=ann.email,
                password="wrong-password-xyz",
                ip=an_ip(),
                now=start + attempt * (FAILURE_WINDOW / 4 + timedelta(seconds=1)),
            )


async def test_a_success_resets_the_failure_count(
    services: Services, make_member: MakeMember
) -> None:
    ann = await make_member()
    for _ in range(4):
        with pytest.raises(LoginRefusedError):
            await log_in(services, email=ann.email, password="wrong-password-xyz", ip=an_ip())
    await log_in(services, email=ann.email, password=ann.password, ip=an_ip())
    for _ in range(4):
        with pytest.raises(LoginRefusedError):
            await log_in(services, email=ann.email, password="wrong-password-xyz", ip=an_ip())


async def test_one_address_gets_a_limited_number_of_attempts_a_minute(
    services: Services, make_member: MakeMember
) -> None:
    ann = await make_member()
    ip = an_ip()
    minute_start = datetime.fromtimestamp((datetime.now(UTC).timestamp() // 60) * 60, UTC)
    for _ in range(MAX_ATTEMPTS_PER_IP):
        with pytest.raises(LoginRefusedError):
            await log_in(
                services, email="nobody@example.com", password="x", ip=ip, now=minute_start
            )
    with pytest.raises(TooManyLoginAttemptsError) as limited:
        await log_in(services, email=ann.email, password=ann.password, ip=ip, now=minute_start)
    assert limited.value.status_code == 429
    assert limited.value.until == minute_start + timedelta(minutes=1)
    # Another address is not affected, and the next minute the address may try again.
    await log_in(services, email=ann.email, password=ann.password, ip=an_ip(), now=minute_start)
    await log_in(services, email=ann.email, password=ann.password, ip=ip, now=limited.value.until)


async def test_the_per_address_limit_is_shared_through_redis(
    services: Services, make_member: MakeMember, redis_url: str
) -> None:
    ann = await make_member()
    ip = an_ip()
    settings = services.settings.model_copy(update={"redis_url": redis_url})
    assert settings.database_url
    now = datetime.now(UTC)
    # Two platforms with their own memory, like two api processes, one Redis.
    async with (
        open_platform_services(settings, settings.database_url) as first,
        open_platform_services(settings, settings.database_url) as second,
    ):
        for attempt in range(MAX_ATTEMPTS_PER_IP):
            platform = first if attempt % 2 else second
            with pytest.raises(LoginRefusedError):
                await log_in(platform, email="nobody@example.com", password="x", ip=ip, now=now)
        with pytest.raises(TooManyLoginAttemptsError):
            await log_in(first, email=ann.email, password=ann.password, ip=ip, now=now)
        assert isinstance(first.redis, Redis)
        await first.redis.delete(f"login-ip:{ip}:{int(now.timestamp() // 60)}")


async def test_the_two_factor_policy_asks_admins_without_totp_to_set_it_up(
    services: Services, make_member: MakeMember
) -> None:
    admin = await make_member(role=Role.ADMIN, require_two_factor_for_admins=True)
    member = await make_member(role=Role.MEMBER, organization_id=admin.organization_id)
    as_admin = await log_in(services, email=admin.email, password=admin.password, ip=an_ip())
    assert as_admin.needs_totp
    assert as_admin.needs_totp_setup
    as_member = await log_in(services, email=member.email, password=member.password, ip=an_ip())
    assert not as_member.needs_totp
    assert not as_member.needs_totp_setup
