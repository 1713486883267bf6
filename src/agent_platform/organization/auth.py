"""Who is calling the REST API: an API key (`Authorization: Bearer ap_…` or `X-API-Key`), and
what it may do: a `read` key reads (GET), a `write` key may also change things."""

from __future__ import annotations

import hmac
import uuid
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy import func, select, update

from agent_platform.db.session import transaction
from agent_platform.kit.errors import AppError
from agent_platform.organization.credentials import API_KEY_PREFIX, hash_api_key
from agent_platform.organization.models import ApiKey
from agent_platform.services import Services


class UnauthorizedError(AppError):
    status_code = 401
    code = "unauthorized"


class InsufficientScopeError(AppError):
    status_code = 403
    code = "insufficient_scope"


# What a key needs for each kind of request: reading, or anything that may change something.
READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# "*" is the scope of keys made before scopes were read/write: it may do everything.
WRITE_SCOPES = frozenset({"write", "*"})


@dataclass(frozen=True)
class Principal:
    """Who acts in an organization: one of its API keys, or a person signed in to the
    dashboard (`user_id`; the pages act through the same services as the API)."""

    organization_id: uuid.UUID
    scopes: frozenset[str]
    api_key_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None

    @property
    def actor_type(self) -> str:
        """As the activity log and versions name who did it."""
        return "api_key" if self.user_id is None else "user"

    @property
    def actor_id(self) -> uuid.UUID:
        actor = self.user_id or self.api_key_id
        assert actor is not None, "a principal is an API key or a signed-in user"
        return actor


def _presented_key(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip()
    return request.headers.get("x-api-key")


async def api_key_principal(request: Request) -> Principal:
    presented = _presented_key(request)
    parts = presented.split("_", 2) if presented else []
    if len(parts) != 3 or parts[0] != API_KEY_PREFIX:
        raise UnauthorizedError("An API key is required (Authorization: Bearer ap_…).")
    services: Services = request.app.state.services
    async with transaction(services.sessions) as session:
        key = await session.scalar(
            select(ApiKey).where(ApiKey.prefix == parts[1], ApiKey.revoked_at.is_(None))
        )
        # Compared in constant time, and the same answer for an unknown or a wrong key.
        if key is None or not hmac.compare_digest(key.key_hash, hash_api_key(presented or "")):
            raise UnauthorizedError("The API key is not valid or has been revoked.")
        await session.execute(
            update(ApiKey).where(ApiKey.id == key.id).values(last_used_at=func.now())
        )
    if request.method not in READ_METHODS and not WRITE_SCOPES & set(key.scopes):
        raise InsufficientScopeError(
            "This API key may only read; a key with the write scope may change things."
        )
    return Principal(
        organization_id=key.organization_id, api_key_id=key.id, scopes=frozenset(key.scopes)
    )


CurrentPrincipal = Annotated[Principal, Depends(api_key_principal)]
