"""Invitations to an organization: a link with a random token (only its hash is stored) that
makes a new user, or adds an existing one, as a member with the invited role."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.db.session import transaction
from agent_platform.kit.errors import AppError, ConflictError, NotFoundError
from agent_platform.organization.models import Invitation, Membership, Organization, Role, User
from agent_platform.organization.passwords import hash_password, password_refusal
from agent_platform.organization.permissions import ForbiddenError
from agent_platform.services import Services

INVITATION_LIFETIME = timedelta(days=7)


class InvalidInvitationError(AppError):
    status_code = 422
    code = "invalid_invitation"


class InvitationNotFoundError(NotFoundError):
    code = "invitation_not_found"


class InvitationUsedError(AppError):
    status_code = 409
    code = "invitation_used"


class InvitationExpiredError(AppError):
    status_code = 410
    code = "invitation_expired"


class WeakPasswordError(AppError):
    status_code = 422
    code = "weak_password"


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalized_email(email: str) -> str:
    email = email.strip().lower()
    local, at, domain = email.partition("@")
    if (
        not local
        or not at
        or "." not in domain
        or len(email) > 320
        or any(c.isspace() for c in email)
    ):
        raise InvalidInvitationError("The email address is not valid.", details={"field": "email"})
    return email


async def create_invitation(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    email: str,
    role: Role | str,
    invited_by: uuid.UUID | None,
) -> tuple[Invitation, str]:
    """A new invitation and its token (for the link; never stored). Only an owner may invite an
    owner; `invited_by` None is the platform itself (the CLI)."""
    email = normalized_email(email)
    try:
        role = Role(role)
    except ValueError as exc:
        raise InvalidInvitationError(
            f"There is no role {role!r}.", details={"field": "role"}
        ) from exc
    if role is Role.OWNER and invited_by is not None:
        inviter_role = await session.scalar(
            select(Membership.role).where(
                Membership.organization_id == organization_id, Membership.user_id == invited_by
            )
        )
        if inviter_role != Role.OWNER:
            raise ForbiddenError("Only an owner may invite another owner.")
    already_member = await session.scalar(
        select(Membership.id)
        .join(User, User.id == Membership.user_id)
        .where(Membership.organization_id == organization_id, func.lower(User.email) == email)
    )
    if already_member is not None:
        raise ConflictError(f"{email} is already a member of this organization.")
    token = secrets.token_urlsafe(32)
    invitation = Invitation(
        organization_id=organization_id,
        email=email,
        role=role.value,
        token_hash=_token_hash(token),
        invited_by=invited_by,
        expires_at=datetime.now(UTC) + INVITATION_LIFETIME,
    )
    session.add(invitation)
    await session.flush()
    return invitation, token


async def accept_invitation(
    services: Services, token: str, *, name: str, password: str, now: datetime | None = None
) -> uuid.UUID:
    """The id of the user who joins. A new user gets `name` and `password` (the password
    policy applies); an existing one keeps theirs and only gains the membership."""
    now = now or datetime.now(UTC)
    async with transaction(services.sessions) as session:
        invitation = await session.scalar(
            select(Invitation).where(Invitation.token_hash == _token_hash(token))
        )
        if invitation is None:
            raise InvitationNotFoundError("This invitation link is not valid.")
        user = await session.scalar(select(User).where(func.lower(User.email) == invitation.email))
    _check_usable(invitation, now)
    password_hash = None
    if user is None:
        refusal = password_refusal(password, email=invitation.email, name=name)
        if refusal is not None:
            raise WeakPasswordError(refusal.message, details={"rule": refusal.rule})
        # Hashed before the write transaction: argon2 takes a while.
        password_hash = hash_password(password)
    async with transaction(services.sessions) as session:
        locked = await session.get(Invitation, invitation.id, with_for_update=True)
        assert locked is not None
        _check_usable(locked, now)  # again, under the lock: a token is used once
        if user is None:
            user = User(email=locked.email, name=name.strip()[:200], password_hash=password_hash)
            session.add(user)
            await session.flush()
        member = await session.scalar(
            select(Membership.id).where(
                Membership.organization_id == locked.organization_id,
                Membership.user_id == user.id,
            )
        )
        if member is None:
            session.add(
                Membership(
                    organization_id=locked.organization_id, user_id=user.id, role=locked.role
                )
            )
        locked.accepted_at = now
    return user.id


def _check_usable(invitation: Invitation, now: datetime) -> None:
    if invitation.accepted_at is not None:
        raise InvitationUsedError("This invitation has already been used.")
    if invitation.expires_at <= now:
        raise InvitationExpiredError(
            "This invitation has expired; ask for a new one.",
            details={"expired_at": invitation.expires_at.isoformat()},
        )


@dataclass(frozen=True)
class InvitationPreview:
    """What the invitation page tells the person who opened the link."""

    organization_name: str
    email: str
    role: str
    has_account: bool  # an existing user joins with their own password: none is asked


async def preview_invitation(
    services: Services, token: str, *, now: datetime | None = None
) -> InvitationPreview:
    """The invitation behind `token`, refused as accept_invitation would refuse it."""
    now = now or datetime.now(UTC)
    async with transaction(services.sessions) as session:
        found = (
            await session.execute(
                select(Invitation, Organization.name)
                .join(Organization, Organization.id == Invitation.organization_id)
                .where(Invitation.token_hash == _token_hash(token))
            )
        ).one_or_none()
        if found is None:
            raise InvitationNotFoundError("This invitation link is not valid.")
        invitation, organization_name = found
        has_account = await session.scalar(
            select(User.id).where(func.lower(User.email) == invitation.email)
        )
    _check_usable(invitation, now)
    return InvitationPreview(
        organization_name=organization_name,
        email=invitation.email,
        role=invitation.role,
        has_account=has_account is not None,
    )


async def pending_invitations(
    session: AsyncSession, organization_id: uuid.UUID, *, now: datetime | None = None
) -> list[Invitation]:
    """The organization's invitations not yet accepted and not expired, newest first."""
    rows = await session.scalars(
        select(Invitation)
        .where(
            Invitation.organization_id == organization_id,
            Invitation.accepted_at.is_(None),
            Invitation.expires_at > (now or datetime.now(UTC)),
        )
        .order_by(Invitation.created_at.desc(), Invitation.id)
    )
    return list(rows)


async def cancel_invitation(
    session: AsyncSession, organization_id: uuid.UUID, invitation_id: uuid.UUID
) -> None:
    """Delete a pending invitation: its link stops working. NotFoundError for an accepted one
    or another organization's."""
    invitation = await session.scalar(
        select(Invitation).where(
            Invitation.id == invitation_id,
            Invitation.organization_id == organization_id,
            Invitation.accepted_at.is_(None),
        )
    )
    if invitation is None:
        raise InvitationNotFoundError("No such pending invitation in this organization.")
    await session.delete(invitation)
    await session.flush()
