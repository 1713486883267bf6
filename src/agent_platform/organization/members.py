"""The people of an organization: listed with their roles, their role changed, removed.

An organization never loses its last owner: the owners' memberships are locked while one of
them is demoted or removed, so two owners demoting each other at once cannot both succeed.
Only an owner may make an owner or touch an owner's membership (as only an owner may invite
one, organization.invitations).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.kit.errors import AppError, ConflictError, NotFoundError
from agent_platform.organization.models import Membership, Role, User, WebSession
from agent_platform.organization.permissions import ForbiddenError, Permission, require


class UnknownRoleError(AppError):
    status_code = 422
    code = "unknown_role"


class LastOwnerError(ConflictError):
    code = "last_owner"


@dataclass(frozen=True)
class MemberView:
    membership_id: uuid.UUID
    user_id: uuid.UUID
    name: str
    email: str
    role: str
    two_factor: bool
    joined_at: datetime


def _view(membership: Membership, user: User) -> MemberView:
    return MemberView(
        membership_id=membership.id,
        user_id=user.id,
        name=user.name,
        email=user.email,
        role=membership.role,
        two_factor=user.totp_enabled,
        joined_at=membership.created_at,
    )


async def list_members(session: AsyncSession, organization_id: uuid.UUID) -> list[MemberView]:
    """Owners first, then admins, members, viewers; by name within a role."""
    rows = await session.execute(
        select(Membership, User)
        .join(User, User.id == Membership.user_id)
        .where(Membership.organization_id == organization_id)
    )
    rank = {role.value: index for index, role in enumerate(Role)}
    members = [_view(membership, user) for membership, user in rows.all()]
    return sorted(members, key=lambda found: (rank[found.role], found.name, found.email))


async def _membership(
    session: AsyncSession, organization_id: uuid.UUID, membership_id: uuid.UUID
) -> Membership:
    membership = await session.scalar(
        select(Membership)
        .where(Membership.id == membership_id, Membership.organization_id == organization_id)
        .with_for_update()
    )
    if membership is None:
        raise NotFoundError("No such member in this organization.")
    return membership


async def member(
    session: AsyncSession, organization_id: uuid.UUID, membership_id: uuid.UUID
) -> MemberView:
    found = (
        await session.execute(
            select(Membership, User)
            .join(User, User.id == Membership.user_id)
            .where(Membership.id == membership_id, Membership.organization_id == organization_id)
        )
    ).one_or_none()
    if found is None:
        raise NotFoundError("No such member in this organization.")
    return _view(*found)


async def _ensure_another_owner(
    session: AsyncSession, organization_id: uuid.UUID, membership: Membership
) -> None:
    owners = await session.scalars(
        select(Membership.id)
        .where(Membership.organization_id == organization_id, Membership.role == Role.OWNER)
        .with_for_update()
    )
    if not set(owners) - {membership.id}:
        raise LastOwnerError("The organization must keep at least one owner.")


def _check_may_touch(acting_role: str, membership: Membership, new_role: Role | None) -> None:
    require(acting_role, Permission.MANAGE_MEMBERS)
    touches_owner = membership.role == Role.OWNER or new_role is Role.OWNER
    if touches_owner and acting_role != Role.OWNER:
        raise ForbiddenError("Only an owner may make an owner or change an owner's membership.")


async def change_role(
    session: AsyncSession,
    organization_id: uuid.UUID,
    membership_id: uuid.UUID,
    new_role: str,
    *,
    acting_role: str,
) -> None:
    # Found first: another organization's membership is not found, whatever the role asked.
    membership = await _membership(session, organization_id, membership_id)
    try:
        role = Role(new_role)
    except ValueError as exc:
        raise UnknownRoleError(f"There is no role {new_role!r}.") from exc
    _check_may_touch(acting_role, membership, role)
    if membership.role == role:
        return
    if membership.role == Role.OWNER:
        await _ensure_another_owner(session, organization_id, membership)
    membership.role = role.value
    await session.flush()


async def remove_member(
    session: AsyncSession,
    organization_id: uuid.UUID,
    membership_id: uuid.UUID,
    *,
    acting_role: str,
) -> None:
    """The membership goes, and with it the person's sessions in this organization."""
    membership = await _membership(session, organization_id, membership_id)
    _check_may_touch(acting_role, membership, None)
    if membership.role == Role.OWNER:
        await _ensure_another_owner(session, organization_id, membership)
    await session.delete(membership)
    await session.execute(
        delete(WebSession).where(
            WebSession.organization_id == organization_id,
            WebSession.user_id == membership.user_id,
        )
    )
    await session.flush()
