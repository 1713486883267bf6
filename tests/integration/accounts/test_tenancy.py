"""Browser sessions and invitations are an organization's rows: row-level security hides them
from every other organization's scope."""

from __future__ import annotations

from sqlalchemy import text

from agent_platform.db.session import tenant_transaction, transaction
from agent_platform.organization.invitations import create_invitation
from agent_platform.organization.models import Role
from agent_platform.organization.web_sessions import start_session
from agent_platform.services import Services
from tests.integration.accounts.conftest import MakeMember


async def test_sessions_and_invitations_are_visible_only_in_their_organization(
    services: Services, make_member: MakeMember
) -> None:
    ann, eve = await make_member(role=Role.OWNER), await make_member(role=Role.OWNER)
    async with transaction(services.sessions) as session:
        await start_session(
            session,
            user_id=ann.user_id,
            organization_id=ann.organization_id,
            ip=None,
            user_agent=None,
            two_factor_passed=True,
        )
        await create_invitation(
            session,
            organization_id=ann.organization_id,
            email="new@example.com",
            role=Role.MEMBER,
            invited_by=ann.user_id,
        )
    for table in ("web_sessions", "invitations"):
        # No WHERE clause: only the policies stand between the two organizations.
        count = text(f"SELECT count(*) FROM {table}")  # noqa: S608 - a constant table name
        async with tenant_transaction(services.sessions, eve.organization_id) as session:
            assert await session.scalar(count) == 0, table
        async with tenant_transaction(services.sessions, ann.organization_id) as session:
            assert await session.scalar(count) == 1, table
