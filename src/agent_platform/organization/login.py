"""Signing in with email and password: lockout after repeated failures, a per-address limit.

A refusal never tells whether the email exists: the message is the same, and an unknown
email still costs one password verification (against a dummy hash), so the time is the same
too. The lockout does tell that an account exists; that is the price of telling its owner
until when it is locked.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import structlog
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select

from agent_platform.db.session import transaction
from agent_platform.kit.errors import AppError
from agent_platform.organization.models import Membership, Organization, Role, User
from agent_platform.organization.passwords import (
    DUMMY_PASSWORD_HASH,
    hash_password,
    needs_rehash,
    verify_password,
)
from agent_platform.services import Services

log = structlog.get_logger("login")

MAX_FAILED_LOGINS = 5
FAILURE_WINDOW = timedelta(minutes=15)
LOCKOUT = timedelta(minutes=15)
MAX_ATTEMPTS_PER_IP = 20
IP_WINDOW_SECONDS = 60
# The roles the organization's two-factor policy (require_two_factor_for_admins) applies to.
TWO_FACTOR_POLICY_ROLES = frozenset({Role.OWNER, Role.ADMIN})


class LoginRefusedError(AppError):
    status_code = 401
    code = "login_refused"

    def __init__(self) -> None:
        super().__init__("The email or the password is not correct.")


class AccountLockedError(AppError):
    """Sign-in must wait until `until`."""

    status_code = 429
    code = "account_locked"

    def __init__(self, until: datetime, message: str | None = None) -> None:
        super().__init__(
            message
            or "Too many failed sign-in attempts: the account is locked until "
            f"{until:%Y-%m-%d %H:%M} UTC.",
            details={"locked_until": until.isoformat()},
        )
        self.until = until


class TooManyLoginAttemptsError(AccountLockedError):
    """Too many attempts from one address: a kind of lock, so handlers of the lock show it too."""

    code = "too_many_login_attempts"

    def __init__(self, until: datetime) -> None:
        super().__init__(
            until,
            f"Too many sign-in attempts from this address; try again after {until:%H:%M:%S} UTC.",
        )


@dataclass(frozen=True)
class LoginResult:
    user_id: uuid.UUID
    organization_id: uuid.UUID
    role: str
    needs_totp: bool  # a TOTP step must follow before the session is fully signed in
    needs_totp_setup: bool = False  # …and the user must first set TOTP up (organization policy)


async def log_in(
    services: Services,
    *,
    email: str,
    password: str,
    ip: str | None,
    now: datetime | None = None,
) -> LoginResult:
    """Check the credentials; LoginRefusedError, AccountLockedError or who signed in."""
    now = now or datetime.now(UTC)
    if ip:
        await _count_attempt_from(services, ip, now)
    async with transaction(services.sessions) as session:
        user = await session.scalar(
            select(User).where(func.lower(User.email) == email.strip().lower())
        )
    if user is None or user.password_hash is None or not user.is_active:
        verify_password(DUMMY_PASSWORD_HASH, password)
        raise LoginRefusedError()
    if user.locked_until is not None and user.locked_until > now:
        raise AccountLockedError(user.locked_until)
    # Verified outside any transaction: argon2 takes a while and must hold no row lock.
    if not verify_password(user.password_hash, password):
        locked_until = await _record_failure(services, user.id, now)
        if locked_until is not None:
            raise AccountLockedError(locked_until)
        raise LoginRefusedError()
    rehashed = hash_password(password) if needs_rehash(user.password_hash) else None
    async with transaction(services.sessions) as session:
        signed_in = await session.get(User, user.id, with_for_update=True)
        assert signed_in is not None
        signed_in.failed_login_count = 0
        signed_in.first_failed_login_at = None
        signed_in.locked_until = None
        if rehashed is not None:
            signed_in.password_hash = rehashed
        # The oldest membership is the organization a user with several lands in.
        membership = (
            await session.execute(
                select(Membership.organization_id, Membership.role, Organization)
                .join(Organization, Organization.id == Membership.organization_id)
                .where(Membership.user_id == user.id)
                .order_by(Membership.created_at, Membership.id)
                .limit(1)
            )
        ).one_or_none()
    if membership is None:
        raise LoginRefusedError()
    organization_id, role, organization = membership
    setup_required = (
        organization.require_two_factor_for_admins
        and role in TWO_FACTOR_POLICY_ROLES
        and not user.totp_enabled
    )
    log.info("login_succeeded", user_id=str(user.id), organization_id=str(organization_id))
    return LoginResult(
        user_id=user.id,
        organization_id=organization_id,
        role=role,
        needs_totp=user.totp_enabled or setup_required,
        needs_totp_setup=setup_required,
    )


async def _record_failure(services: Services, user_id: uuid.UUID, now: datetime) -> datetime | None:
    """Count a failed attempt; the end of the lock when this one locks the account."""
    async with transaction(services.sessions) as session:
        user = await session.get(User, user_id, with_for_update=True)
        assert user is not None
        return note_failed_attempt(user, now)


def note_failed_attempt(user: User, now: datetime) -> datetime | None:
    """Count a failed password or two-factor code on `user` (a row locked for update); the
    end of the lock when this attempt locks the account."""
    window_open = (
        user.first_failed_login_at is not None and now - user.first_failed_login_at < FAILURE_WINDOW
    )
    if window_open:
        user.failed_login_count += 1
    else:
        user.failed_login_count = 1
        user.first_failed_login_at = now
    if user.failed_login_count < MAX_FAILED_LOGINS:
        return None
    user.locked_until = now + LOCKOUT
    user.failed_login_count = 0
    user.first_failed_login_at = None
    log.warning("account_locked", user_id=str(user.id))
    return user.locked_until


def is_locked(user: User, now: datetime) -> bool:
    return user.locked_until is not None and user.locked_until > now


async def _count_attempt_from(services: Services, ip: str, now: datetime) -> None:
    """Count an attempt from `ip` in fixed minute windows (in Redis, shared by every process,
    when there is one); TooManyLoginAttemptsError past MAX_ATTEMPTS_PER_IP."""
    window = math.floor(now.timestamp() / IP_WINDOW_SECONDS)
    key = f"login-ip:{ip}:{window}"
    redis = services.redis
    count = await _shared_count(redis, key) if redis is not None else None
    if count is None:
        count = services.login_attempts.count(key, window)
    if count > MAX_ATTEMPTS_PER_IP:
        raise TooManyLoginAttemptsError(
            datetime.fromtimestamp((window + 1) * IP_WINDOW_SECONDS, UTC)
        )


async def _shared_count(redis: Redis, key: str) -> int | None:
    try:
        async with redis.pipeline(transaction=True) as pipe:
            pipe.incr(key)
            pipe.expire(key, IP_WINDOW_SECONDS * 2)
            count, _ = await pipe.execute()
    except (RedisError, OSError) as exc:
        # Redis down is degraded, not broken: this process still keeps its own count.
        log.warning("login_rate_limit_local", error=repr(exc))
        return None
    return int(count)
