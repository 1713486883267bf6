"""Invitations: a new user or an existing one joins with the invited role; a token works once,
not after it expires, and only an owner may invite an owner."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from agent_platform.db.session import transaction
from agent_platform.kit.errors import ConflictError
from agent_platform.organization.invitations import (
    INVITATION_LIFETIME,
    InvalidInvitationError,
    InvitationExpiredError,
    InvitationNotFoundError,
    InvitationUsedError,
    WeakPasswordError,
    accept_invitation,
    create_invitation,
)
from agent_platform.organization.login import log_in
from agent_platform.organization.models import Invitation, Membership, Role, User
from agent_platform.organization.permissions import ForbiddenError
from agent_platform.services import Services
from tests.integration.accounts.conftest import PASSWORD, MakeMember, Member, an_ip


async def _invite(services: Services, inviter: Member, email: str, role: Role) -> str:
    async with transaction(services.sessions) as session:
        _, token = await create_invitation(
            session,
            organization_id=inviter.organization_id,
            email=email,
            role=role,
            invited_by=inviter.user_id,
        )
    return token


async def test_a_new_user_joins_and_can_sign_in(
    services: Services, make_member: MakeMember
) -> None:
    owner = await make_member(role=Role.OWNER)
    token = await _invite(services, owner, " Carol@Example.com ", Role.MEMBER)
    async with transaction(services.sessions) as session:
        invitation = await session.scalar(select(Invitation))
    assert invitation is not None
    assert invitation.email == "carol@example.com"
    assert invitation.token_hash != token
    lifetime = invitation.expires_at - invitation.created_at
    assert abs(lifetime - INVITATION_LIFETIME) < timedelta(minutes=1)

    user_id = await accept_invitation(services, token, name="Carol", password=PASSWORD)
    result = await log_in(services, email="carol@example.com", password=PASSWORD, ip=an_ip())
    assert (result.user_id, result.organization_id, result.role) == (
        user_id,
        owner.organization_id,
        "member",
    )
    with pytest.raises(InvitationUsedError):
        await accept_invitation(services, token, name="Carol", password=PASSWORD)


async def test_an_existing_user_gains_a_membership_and_keeps_the_password(
    services: Services, make_member: MakeMember
) -> None:
    owner = await make_member(role=Role.OWNER)
    elsewhere = await make_member(role=Role.OWNER)
    token = await _invite(services, owner, elsewhere.email, Role.VIEWER)
    user_id = await accept_invitation(services, token, name="ignored", password="ignored")
    assert user_id == elsewhere.user_id
    async with transaction(services.sessions) as session:
        memberships = await session.execute(
            select(Membership.organization_id, Membership.role).where(Membership.user_id == user_id)
        )
        roles = dict(memberships.all())
        user = await session.get(User, user_id)
    assert roles == {elsewhere.organization_id: "owner", owner.organization_id: "viewer"}
    assert user is not None
    assert user.name == "Ann Lee"
    await log_in(services, email=elsewhere.email, password=elsewhere.password, ip=an_ip())


async def test_a_weak_password_is_refused_and_the_invitation_stays_usable(
    services: Services, make_member: MakeMember
) -> None:
    owner = await make_member(role=Role.OWNER)
    token = await _invite(services, owner, "dave@example.com", Role.MEMBER)
    with pytest.raises(WeakPasswordError) as refused:
        await accept_invitation(services, token, name="Dave", password="password1234")
    assert refused.value.status_code == 422
    with pytest.raises(WeakPasswordError):
        await accept_invitation(services, token, name="Dave", password="dave-Harbor-93-lemons")
    await accept_invitation(services, token, name="Dave", password=PASSWORD)


async def test_an_unknown_or_expired_token_is_refused(
    services: Services, make_member: MakeMember
) -> None:
    owner = await make_member(role=Role.OWNER)
    token = await _invite(services, owner, "erin@example.com", Role.MEMBER)
    with pytest.raises(InvitationNotFoundError):
        await accept_invitation(services, token + "x", name="Erin", password=PASSWORD)
    later = datetime.now(UTC) + INVITATION_LIFETIME
    with pytest.raises(InvitationExpiredError) as expired:
        await accept_invitation(services, token, name="Erin", password=PASSWORD, now=later)
    assert expired.value.status_code == 410
    async with transaction(services.sessions) as session:
        assert await session.scalar(select(User).where(User.email == "erin@example.com")) is None


async def test_bad_invitations_are_refused(services: Services, make_member: MakeMember) -> None:
    owner = await make_member(role=Role.OWNER)
    admin = await make_member(role=Role.ADMIN, organization_id=owner.organization_id)
    with pytest.raises(InvalidInvitationError):
        await _invite(services, owner, "not-an-email", Role.MEMBER)
    with pytest.raises(InvalidInvitationError):
        await _invite(services, owner, "frank@example.com", "superuser")  # type: ignore[arg-type]
    with pytest.raises(ConflictError):
        await _invite(services, owner, admin.email.upper(), Role.MEMBER)
    with pytest.raises(ForbiddenError):
        await _invite(services, admin, "grace@example.com", Role.OWNER)
    await _invite(services, owner, "grace@example.com", Role.OWNER)
    await _invite(services, admin, "heidi@example.com", Role.ADMIN)
