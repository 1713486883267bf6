"""Customers who wrote while their account's connection was out of service, answered when an
admin connects the account again.

While Kommo refuses a connection's tokens (`needs_reauth`) or blocks the account (`blocked`),
customers' messages are kept in the inbox and marked ignored: nothing can be sent. When the
admin reconnects, what does the customer expect? Someone who wrote "how much is it?" twenty
minutes ago still waits for an answer; one who wrote yesterday has moved on, or has been
answered by a manager, and a bot reply to a stale question would be wrong. And a customer
who sent five messages during the outage wants one answer, not five. So, per lead:

- only the lead's newest message counts, and only if it is the customer's: when a manager
  wrote after it (an outgoing message), the customer is no longer waiting for us;
- only if it came within KOMMO_RECONNECT_REPLY_WINDOW_MINUTES (an hour by default; 0 turns
  this off); older ones stay ignored;
- only messages the outage left unanswered: ignored because the connection was already out of
  service, or failed because their own reply met Kommo's refusal (the message that revealed
  the outage: usually the very one the customer waits on). One answered, or failed for
  another reason, is not repeated.

The chosen messages go back to `pending` and get the usual reply job, in the transaction that
reconnects the account: the agent answers the newest message with the whole conversation
(the earlier messages included) as its history, exactly once.

A connection that was `disabled` (disconnected here, or the integration uninstalled) was
switched off on purpose: reconnecting it answers nothing from that time.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.agent.tasks import answer_incoming_message
from agent_platform.crm import repository
from agent_platform.crm.kommo.errors import KommoBlocked, KommoPaymentRequired
from agent_platform.crm.kommo.tokens import KommoReauthRequired
from agent_platform.crm.models import IGNORED_WHILE_INACTIVE, ConnectionStatus
from agent_platform.queue.registry import defer_in_transaction
from agent_platform.services import Services

# The states a connection falls into against its admin's will.
OUTAGES = frozenset({ConnectionStatus.NEEDS_REAUTH.value, ConnectionStatus.BLOCKED.value})

# The inbox errors (LIKE patterns) of messages the outage left unanswered. The reply job
# records a failure as the exception's repr (agent.tasks).
OUTAGE_ERRORS = (
    IGNORED_WHILE_INACTIVE,
    *(
        f"{refusal.__name__}(%"
        for refusal in (KommoReauthRequired, KommoBlocked, KommoPaymentRequired)
    ),
)

log = structlog.get_logger("kommo.missed_messages")


async def answer_missed_messages(
    session: AsyncSession, services: Services, connection_id: uuid.UUID
) -> None:
    """Defer, in `session`'s transaction, the answers the outage held back."""
    window = timedelta(minutes=services.settings.kommo_reconnect_reply_window_minutes)
    if not window:
        return
    reopened = await repository.reopen_unanswered_customer_messages(
        session, connection_id, window, errors=OUTAGE_ERRORS
    )
    for inbox_event_id in reopened:
        await defer_in_transaction(
            session,
            services.queue,
            answer_incoming_message,
            services.settings.job_queue_name,
            inbox_event_id=str(inbox_event_id),
        )
    log.info("missed_messages_answered", count=len(reopened))
