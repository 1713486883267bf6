"""API keys of an organization: created (the plaintext shown once), listed, revoked."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.kit.errors import AppError, NotFoundError
from agent_platform.organization.credentials import new_api_key
from agent_platform.organization.models import ApiKey

API_KEY_SCOPES = frozenset({"read", "write"})
MAX_NAME_LENGTH = 200


class InvalidApiKeyError(AppError):
    status_code = 422
    code = "invalid_api_key"


@dataclass(frozen=True)
class ApiKeySummary:
    """What may be shown of a key: never the key or its hash."""

    id: uuid.UUID
    name: str
    prefix: str
    scopes: tuple[str, ...]
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class CreatedApiKey:
    summary: ApiKeySummary
    plaintext: str  # shown to the user once; only its hash is stored


def _summary(key: ApiKey) -> ApiKeySummary:
    return ApiKeySummary(
        id=key.id,
        name=key.name,
        prefix=key.prefix,
        scopes=tuple(key.scopes),
        created_at=key.created_at,
        last_used_at=key.last_used_at,
        revoked_at=key.revoked_at,
    )


async def create_api_key(
    session: AsyncSession,
    *,
    organization_id: uuid.UUID,
    name: str,
    scopes: Iterable[str],
    created_by: uuid.UUID | None,
) -> CreatedApiKey:
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH:
        raise InvalidApiKeyError(
            f"A key needs a name of 1 to {MAX_NAME_LENGTH} characters.", details={"field": "name"}
        )
    wanted = sorted(set(scopes))
    if not wanted or not set(wanted) <= API_KEY_SCOPES:
        raise InvalidApiKeyError(
            f"Scopes must be some of: {', '.join(sorted(API_KEY_SCOPES))}.",
            details={"field": "scopes", "scopes": wanted},
        )
    issued = new_api_key()
    key = ApiKey(
        organization_id=organization_id,
        name=name,
        prefix=issued.prefix,
        key_hash=issued.key_hash,
        scopes=wanted,
        created_by=created_by,
    )
    session.add(key)
    await session.flush()
    await session.refresh(key)  # created_at comes from the database
    return CreatedApiKey(summary=_summary(key), plaintext=issued.plaintext)


async def list_api_keys(session: AsyncSession, organization_id: uuid.UUID) -> list[ApiKeySummary]:
    """The organization's keys, newest first, revoked ones included (marked)."""
    keys = await session.scalars(
        select(ApiKey)
        .where(ApiKey.organization_id == organization_id)
        .order_by(ApiKey.created_at.desc(), ApiKey.id)
    )
    return [_summary(key) for key in keys]


async def get_api_key(
    session: AsyncSession, organization_id: uuid.UUID, api_key_id: uuid.UUID
) -> ApiKeySummary:
    """One of the organization's keys; NotFoundError for another organization's."""
    key = await session.scalar(
        select(ApiKey).where(ApiKey.id == api_key_id, ApiKey.organization_id == organization_id)
    )
    if key is None:
        raise NotFoundError("No such API key in this organization.")
    return _summary(key)


async def revoke_api_key(
    session: AsyncSession, organization_id: uuid.UUID, api_key_id: uuid.UUID
) -> ApiKeySummary:
    """Revoke the key (from the next request on); revoking a revoked key changes nothing."""
    key = await session.scalar(
        select(ApiKey).where(ApiKey.id == api_key_id, ApiKey.organization_id == organization_id)
    )
    if key is None:
        raise NotFoundError("No such API key in this organization.")
    if key.revoked_at is None:
        key.revoked_at = datetime.now(UTC)
        await session.flush()
    return _summary(key)
