"""People who sign in to the dashboard in the web tests: a user with a password and a role."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass

from agent_platform.db.session import transaction
from agent_platform.organization.models import Membership, Organization, Role, User
from agent_platform.organization.passwords import hash_password
from agent_platform.services import Services

PASSWORD = "violet-Harbor-93-quietly-lemons"


@dataclass(frozen=True)
class Person:
    user_id: uuid.UUID
    organization_id: uuid.UUID
    email: str
    password: str


async def create_person(
    services: Services,
    *,
    organization_name: str = "Acme Sales",
    email: str | None = None,
    name: str = "Ann Lee",
    role: Role = Role.ADMIN,
    totp_secret: str | None = None,
    require_two_factor_for_admins: bool = False,
) -> Person:
    """A user of a new organization; with `totp_secret`, one with two-factor sign-in on."""
    email = email or f"user-{secrets.token_hex(4)}@example.com"
    async with transaction(services.sessions) as session:
        organization = Organization(
            name=organization_name,
            slug=f"org-{secrets.token_hex(4)}",
            require_two_factor_for_admins=require_two_factor_for_admins,
        )
        session.add(organization)
        await session.flush()
        user = User(email=email, name=name, password_hash=hash_password(PASSWORD))
        if totp_secret is not None:
            user.totp_secret_encrypted = services.secrets.encrypt(totp_secret)
            user.totp_enabled = True
        session.add(user)
        await session.flush()
        session.add(Membership(organization_id=organization.id, user_id=user.id, role=role))
    return Person(user.id, organization.id, email, PASSWORD)


async def create_member(
    services: Services, organization_id: uuid.UUID, role: Role = Role.ADMIN
) -> Person:
    """A user who signs in with a password, in an organization that exists already."""
    email = f"member-{secrets.token_hex(4)}@example.com"
    async with transaction(services.sessions) as session:
        user = User(email=email, name="Member", password_hash=hash_password(PASSWORD))
        session.add(user)
        await session.flush()
        session.add(Membership(organization_id=organization_id, user_id=user.id, role=role))
    return Person(user.id, organization_id, email, PASSWORD)
