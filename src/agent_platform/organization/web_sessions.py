"""Browser sessions: a random token in the cookie, only its hash in `web_sessions`.

A session ends after IDLE_TIMEOUT without a request, and at the latest ABSOLUTE_LIFETIME after
it started, whatever its use. It is also gone as soon as its user is deactivated or loses
the membership it was opened in.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.organization.models import Membership, User, WebSession

IDLE_TIMEOUT = timedelta(hours=12)
ABSOLUTE_LIFETIME = timedelta(days=7)
# last_seen_at is written at most this often: a page with many requests costs one write.
_LAST_SEEN_PRECISION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedSession:
    token: str  # for the cookie; never stored
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class ActiveSession:
    id: uuid.UUID
    user_id: uuid.UUID
    organization_id: uuid.UUID
    role: str
    email: str
    name: str
    csrf_token: str
    two_factor_passed: bool


def _token_hash(token: str) -> str:
    # The token is 256 random bits, so a fast hash suffices to keep a database leak harmless.
    return hashlib.sha256(token.encode()).hexdigest()


async def start_session(
    session: AsyncSession,
    *,
    user_id: uuid.UUID,
    organization_id: uuid.UUID,
    ip: str | None,
    user_agent: str | None,
    two_factor_passed: bool,
) -> IssuedSession:
    now = datetime.now(UTC)
    token = secrets.token_urlsafe(32)
    issued = IssuedSession(
        token=token, csrf_token=secrets.token_urlsafe(32), expires_at=now + ABSOLUTE_LIFETIME
    )
    session.add(
        WebSession(
            organization_id=organization_id,
            user_id=user_id,
            token_hash=_token_hash(token),
            csrf_token=issued.csrf_token,
            last_seen_at=now,
            expires_at=issued.expires_at,
            ip=ip[:64] if ip else None,
            user_agent=user_agent[:500] if user_agent else None,
            two_factor_passed=two_factor_passed,
        )
    )
    await session.flush()
    return issued


async def active_session(
    session: AsyncSession, token: str, *, now: datetime
) -> ActiveSession | None:
    """The live session of `token`, its use noted; None for an unknown, expired or idle one."""
    if not token:
        return None
    row = (
        await session.execute(
            select(WebSession, User, Membership.role)
            .join(User, User.id == WebSession.user_id)
            .join(
                Membership,
                (Membership.user_id == WebSession.user_id)
                & (Membership.organization_id == WebSession.organization_id),
            )
            .where(WebSession.token_hash == _token_hash(token), User.is_active.is_(True))
        )
    ).one_or_none()
    if row is None:
        return None
    web_session, user, role = row
    if now >= web_session.expires_at or now >= web_session.last_seen_at + IDLE_TIMEOUT:
        await session.execute(delete(WebSession).where(WebSession.id == web_session.id))
        return None
    if now - web_session.last_seen_at >= _LAST_SEEN_PRECISION:
        await session.execute(
            update(WebSession).where(WebSession.id == web_session.id).values(last_seen_at=now)
        )
    return ActiveSession(
        id=web_session.id,
        user_id=user.id,
        organization_id=web_session.organization_id,
        role=role,
        email=user.email,
        name=user.name,
        csrf_token=web_session.csrf_token,
        two_factor_passed=web_session.two_factor_passed,
    )


async def pass_two_factor(session: AsyncSession, session_id: uuid.UUID) -> None:
    await session.execute(
        update(WebSession).where(WebSession.id == session_id).values(two_factor_passed=True)
    )


async def end_session(session: AsyncSession, token: str) -> None:
    await session.execute(delete(WebSession).where(WebSession.token_hash == _token_hash(token)))


async def end_user_sessions(session: AsyncSession, user_id: uuid.UUID) -> int:
    """Sign the user out everywhere (after a password change); how many sessions ended."""
    result = await session.execute(delete(WebSession).where(WebSession.user_id == user_id))
    return int(result.rowcount)  # type: ignore[attr-defined]
