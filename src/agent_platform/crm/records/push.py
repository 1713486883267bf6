"""Pushing a record to Kommo once, whatever happens to the job that pushes it.

An attempt is counted before the request goes out. When an earlier attempt was counted, its
worker may have died after Kommo wrote the record and before we noted it: the push then looks
in Kommo for that record before sending again (`find_sent`), so a retried job never creates
twice. What cannot succeed on a retry (Kommo refused the record, the connection stopped) marks
the record failed with the reason, where the API shows it.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol, TypeVar

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.crm.kommo.client import KommoClient
from agent_platform.crm.kommo.errors import KommoError, KommoValidationError
from agent_platform.crm.kommo.session import call_kommo
from agent_platform.crm.models import CrmCall, CrmTask
from agent_platform.crm.records import repository
from agent_platform.db.session import transaction
from agent_platform.kit.transient import is_transient
from agent_platform.services import Services

log = structlog.get_logger("crm.records.push")

Sent = TypeVar("Sent")
Sent_co = TypeVar("Sent_co", covariant=True)
MAX_REASON_LENGTH = 2000


class KommoPush(Protocol[Sent_co]):
    @property
    def may_have_been_sent(self) -> bool:
        """An earlier attempt was counted: it may have reached Kommo."""

    async def find_sent(self, kommo: KommoClient) -> Sent_co | None:
        """What an earlier attempt created in Kommo, when it did."""

    async def count_attempt(self, session: AsyncSession) -> None: ...

    async def send(self, kommo: KommoClient) -> Sent_co: ...


async def push_once(services: Services, connection_id: uuid.UUID, push: KommoPush[Sent]) -> Sent:
    async def attempt(kommo: KommoClient) -> Sent:
        if push.may_have_been_sent:
            found = await push.find_sent(kommo)
            if found is not None:
                log.info("record_already_in_kommo")
                return found
        async with transaction(services.sessions) as session:
            await push.count_attempt(session)
        return await push.send(kommo)

    # A token valid now, the account's rate limit, one refresh and retry on a 401.
    return await call_kommo(services, connection_id, attempt)


@asynccontextmanager
async def failure_recorded(
    services: Services, record: type[CrmTask] | type[CrmCall], record_id: uuid.UUID
) -> AsyncIterator[None]:
    """Mark the record failed, saying why, when the work inside fails for good."""
    try:
        yield
    except Exception as exc:
        if is_transient(exc):
            raise  # retried by the job queue; the record stays pending
        async with transaction(services.sessions) as session:
            await repository.record_sync_failed(session, record, record_id, failure_reason(exc))
        raise


def failure_reason(exc: Exception) -> str:
    """Kommo's own words where it gave some (field by field for a validation error)."""
    if isinstance(exc, KommoValidationError) and exc.issues:
        reason = "; ".join(
            f"{issue.path}: {issue.detail}" if issue.path else issue.detail for issue in exc.issues
        )
    elif isinstance(exc, KommoError):
        reason = exc.detail
    else:
        reason = str(exc) or type(exc).__name__
    return reason[:MAX_REASON_LENGTH]
