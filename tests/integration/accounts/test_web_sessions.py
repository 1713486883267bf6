"""Browser sessions: found by token, ended by idleness, by age, by sign-out, by deactivation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update

from agent_platform.db.session import transaction
from agent_platform.organization.models import Membership, Role, User, WebSession
from agent_platform.organization.web_sessions import (
    ABSOLUTE_LIFETIME,
    IDLE_TIMEOUT,
    IssuedSession,
    active_session,
    end_session,
    end_user_sessions,
    pass_two_factor,
    start_session,
)
from agent_platform.services import Services
from tests.integration.accounts.conftest import MakeMember, Member


async def _start(
    services: Services, member: Member, *, two_factor_passed: bool = True
) -> IssuedSession:
    async with transaction(services.sessions) as session:
        return await start_session(
            session,
            user_id=member.user_id,
            organization_id=member.organization_id,
            ip="203.0.113.7",
            user_agent="Mozilla/5.0",
            two_factor_passed=two_factor_passed,
        )


async def _active(services: Services, token: str, now: datetime) -> object:
    async with transaction(services.sessions) as session:
        return await active_session(session, token, now=now)


async def test_a_started_session_is_found_by_its_token(
    services: Services, make_member: MakeMember
) -> None:
    ann = await make_member(role=Role.VIEWER)
    issued = await _start(services, ann)
    now = datetime.now(UTC)
    assert issued.expires_at - now <= ABSOLUTE_LIFETIME
    async with transaction(services.sessions) as session:
        found = await active_session(session, issued.token, now=now)
        stored = await session.scalar(select(WebSession.token_hash))
    assert found is not None
    assert (found.user_id, found.organization_id, found.role) == (
        ann.user_id,
        ann.organization_id,
        "viewer",
    )
    assert (found.email, found.name) == (ann.email, "Ann Lee")
    assert found.csrf_token == issued.csrf_token
    assert found.two_factor_passed
    assert stored != issued.token  # only a hash is kept
    assert await _active(services, issued.token + "x", now) is None
    assert await _active(services, "", now) is None


async def test_use_keeps_a_session_alive_and_idleness_ends_it(
    services: Services, make_member: MakeMember
) -> None:
    ann = await make_member()
    issued = await _start(services, ann)
    now = datetime.now(UTC)
    # Used every 11 hours, it lives on past the idle timeout…
    for hours in (11, 22, 33):
        assert await _active(services, issued.token, now + timedelta(hours=hours)) is not None
    # …until 12 hours pass without a request.
    assert await _active(services, issued.token, now + timedelta(hours=33) + IDLE_TIMEOUT) is None
    async with transaction(services.sessions) as session:
        assert await session.scalar(select(func.count()).select_from(WebSession)) == 0


async def test_a_session_ends_after_its_absolute_lifetime_however_used(
    services: Services, make_member: MakeMember
) -> None:
    ann = await make_member()
    issued = await _start(services, ann)
    moment = datetime.now(UTC)
    while moment + timedelta(hours=10) < issued.expires_at:
        moment += timedelta(hours=10)
        assert await _active(services, issued.token, moment) is not None
    assert await _active(services, issued.token, issued.expires_at) is None


async def test_sign_out_ends_one_session_and_a_password_change_all(
    services: Services, make_member: MakeMember
) -> None:
    ann = await make_member()
    first, second, third = [await _start(services, ann) for _ in range(3)]
    now = datetime.now(UTC)
    async with transaction(services.sessions) as session:
        await end_session(session, first.token)
    assert await _active(services, first.token, now) is None
    assert await _active(services, second.token, now) is not None
    async with transaction(services.sessions) as session:
        assert await end_user_sessions(session, ann.user_id) == 2
    assert await _active(services, third.token, now) is None


async def test_the_two_factor_step_is_recorded_on_the_session(
    services: Services, make_member: MakeMember
) -> None:
    ann = await make_member()
    issued = await _start(services, ann, two_factor_passed=False)
    now = datetime.now(UTC)
    async with transaction(services.sessions) as session:
        pending = await active_session(session, issued.token, now=now)
        assert pending is not None
        assert not pending.two_factor_passed
        await pass_two_factor(session, pending.id)
    async with transaction(services.sessions) as session:
        passed = await active_session(session, issued.token, now=now)
    assert passed is not None
    assert passed.two_factor_passed


async def test_a_deactivated_user_or_a_removed_member_has_no_session(
    services: Services, make_member: MakeMember
) -> None:
    ann = await make_member()
    bob = await make_member()
    ann_session, bob_session = await _start(services, ann), await _start(services, bob)
    async with transaction(services.sessions) as session:
        await session.execute(update(User).where(User.id == ann.user_id).values(is_active=False))
        await session.execute(delete(Membership).where(Membership.user_id == bob.user_id))
    now = datetime.now(UTC)
    assert await _active(services, ann_session.token, now) is None
    assert await _active(services, bob_session.token, now) is None
