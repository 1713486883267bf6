"""Accounts made from the command line (`agent-platform user create`): the first owner of an
installation, or one more user of an organization, without an invitation link."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.kit.errors import AppError
from agent_platform.organization.models import Membership, Organization, Role, User


class AccountRefusedError(AppError):
    status_code = 409
    code = "account_refused"


@dataclass(frozen=True)
class CreatedAccount:
    user_id: uuid.UUID
    organization_id: uuid.UUID
    organization_created: bool


async def create_account(
    session: AsyncSession,
    *,
    email: str,
    name: str,
    password_hash: str,
    organization_name: str,
    role: Role,
) -> CreatedAccount:
    """A new user with a membership of `organization_name`, created when no organization has
    that name. An email that already has an account is refused: its password stays its own."""
    taken = await session.scalar(select(User.id).where(func.lower(User.email) == email))
    if taken is not None:
        raise AccountRefusedError(f"{email} already has an account")
    organization = await session.scalar(
        select(Organization).where(Organization.name == organization_name)
    )
    created = organization is None
    if organization is None:
        organization = Organization(name=organization_name, slug=_slug(organization_name))
        session.add(organization)
    user = User(email=email, name=name, password_hash=password_hash)
    session.add(user)
    await session.flush()
    session.add(Membership(organization_id=organization.id, user_id=user.id, role=role))
    return CreatedAccount(user.id, organization.id, created)


def _slug(name: str) -> str:
    # A random tail keeps slugs unique without a lookup: names need not be.
    base = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:80] or "organization"
    return f"{base}-{secrets.token_hex(3)}"
