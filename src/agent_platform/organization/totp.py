"""TOTP two-factor (RFC 6238, as authenticator apps speak it): enrollment, verification.

The secret is stored encrypted (services.secrets). A code is accepted one step (30 s) either
side of now, for clocks that drift, and only once: the step it matched is kept, and a code of
that step or an earlier one is refused afterwards. Wrong codes count toward the same lockout
as wrong passwords (organization.login), so six digits cannot be tried through.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pyotp
import segno
from pyotp.utils import strings_equal
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.kit.errors import AppError, NotFoundError
from agent_platform.organization.login import (
    TWO_FACTOR_POLICY_ROLES,
    is_locked,
    note_failed_attempt,
)
from agent_platform.organization.models import Organization, User
from agent_platform.services import Services

ISSUER = "GPT Agent Platform"
# Steps either side of now that still count.
VALID_WINDOW = 1
CODE_LENGTH = 6


class InvalidTotpError(AppError):
    status_code = 422
    code = "invalid_totp"


@dataclass(frozen=True)
class TotpEnrollment:
    secret: str  # base32, also shown as text for apps that cannot scan
    uri: str  # otpauth://…
    qr_svg: str  # the URI as an SVG QR code: elements and attributes only, no script or style


def new_enrollment(*, email: str, issuer: str = ISSUER) -> TotpEnrollment:
    secret = pyotp.random_base32()
    uri = pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)
    qr_svg = segno.make(uri, error="m").svg_inline(scale=4, title="TOTP QR code")
    return TotpEnrollment(secret=secret, uri=uri, qr_svg=qr_svg)


def _matched_step(secret: str, code: str) -> int | None:
    """The time step `code` belongs to, within the window around now; None when it matches none."""
    code = code.replace(" ", "").strip()
    if len(code) != CODE_LENGTH or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now_step = totp.timecode(time.time())
    for step in range(now_step - VALID_WINDOW, now_step + VALID_WINDOW + 1):
        if strings_equal(totp.generate_otp(step), code):
            return step
    return None


async def _user_for_update(session: AsyncSession, user_id: uuid.UUID) -> User:
    # Locked so that two requests with the same code cannot both pass the replay check.
    user = await session.get(User, user_id, with_for_update=True)
    if user is None:
        raise NotFoundError("No such user.")
    return user


async def enable_totp(
    services: Services, session: AsyncSession, user_id: uuid.UUID, secret: str, code: str
) -> None:
    """Turn TOTP on with the enrolled `secret`, once `code` proves the app has it."""
    try:
        step = _matched_step(secret, code)
    except ValueError as exc:  # not base32: the secret did not come from new_enrollment
        raise InvalidTotpError("The two-factor secret is not valid.") from exc
    if step is None:
        raise InvalidTotpError(
            "The code does not match; check the time on your phone and try the current code."
        )
    user = await _user_for_update(session, user_id)
    user.totp_secret_encrypted = services.secrets.encrypt(secret)
    user.totp_enabled = True
    user.totp_last_step = step


async def verify_totp(
    services: Services, session: AsyncSession, user_id: uuid.UUID, code: str
) -> bool:
    """Whether `code` is the user's current code, not used before. False when TOTP is off or
    the account is locked; a wrong code counts as a failed attempt (the caller commits it)."""
    now = datetime.now(UTC)
    user = await _user_for_update(session, user_id)
    if not user.totp_enabled or user.totp_secret_encrypted is None or is_locked(user, now):
        return False
    step = _matched_step(services.secrets.decrypt(user.totp_secret_encrypted), code)
    if step is None or (user.totp_last_step is not None and step <= user.totp_last_step):
        note_failed_attempt(user, now)
        return False
    user.totp_last_step = step
    user.failed_login_count = 0
    user.first_failed_login_at = None
    return True


async def disable_totp(services: Services, session: AsyncSession, user_id: uuid.UUID) -> None:
    user = await _user_for_update(session, user_id)
    user.totp_secret_encrypted = None
    user.totp_enabled = False
    user.totp_last_step = None


async def organization_requires_two_factor(
    session: AsyncSession, organization_id: uuid.UUID
) -> bool:
    """The organization's policy: owners and admins must pass a TOTP step at every login."""
    required = await session.scalar(
        select(Organization.require_two_factor_for_admins).where(Organization.id == organization_id)
    )
    if required is None:
        raise NotFoundError("No such organization.")
    return bool(required)


async def two_factor_mandatory_for(
    session: AsyncSession, organization_id: uuid.UUID, role: str
) -> bool:
    """Whether the policy binds `role`: then its holder may not turn two-factor off."""
    return role in TWO_FACTOR_POLICY_ROLES and await organization_requires_two_factor(
        session, organization_id
    )


async def set_two_factor_requirement(
    session: AsyncSession, organization_id: uuid.UUID, *, required: bool
) -> None:
    """Switch the policy; owners and admins without TOTP set it up at their next login."""
    organization = await session.get(Organization, organization_id, with_for_update=True)
    if organization is None:
        raise NotFoundError("No such organization.")
    organization.require_two_factor_for_admins = required
