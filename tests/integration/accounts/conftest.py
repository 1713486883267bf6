"""People the accounts tests sign in as: a user with a password, a member of an organization."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import pytest

from agent_platform.db.session import transaction
from agent_platform.organization.models import Membership, Organization, Role, User
from agent_platform.organization.passwords import hash_password
from agent_platform.services import Services

PASSWORD = "violet-Harbor-93-quietly-lemons"


@dataclass(frozen=True)
class Member:
    user_id: uuid.UUID
    organization_id: uuid.UUID
    email: str
    password: str


MakeMember = Callable[..., Awaitable[Member]]


@pytest.fixture
def make_member(services: Services) -> MakeMember:
    async def make(
        *,
        role: Role = Role.ADMIN,
        organization_id: uuid.UUID | None = None,
        require_two_factor_for_admins: bool = False,
    ) -> Member:
        email = f"user-{secrets.token_hex(4)}@example.com"
        async with transaction(services.sessions) as session:
            if organization_id is None:
                organization = Organization(
                    name="Acme",
                    slug=f"acme-{secrets.token_hex(3)}",
                    require_two_factor_for_admins=require_two_factor_for_admins,
                )
                session.add(organization)
                await session.flush()
                organization_id = organization.id
            user = User(email=email, name="Ann Lee", password_hash=hash_password(PASSWORD))
            session.add(user)
            await session.flush()
            session.add(Membership(organization_id=organization_id, user_id=user.id, role=role))
        return Member(user.id, organization_id, email, PASSWORD)

    return make


def an_ip() -> str:
    """An address of the test's own: the per-address count of another test does not apply."""
    return f"10.{secrets.randbelow(256)}.{secrets.randbelow(256)}.{secrets.randbelow(256)}"
