"""Our webhook in a connected Kommo account: subscribed when the account is connected, removed
when it is disconnected.

Kommo sends an account's events to each destination subscribed with `POST /api/v4/webhooks`,
and subscribing a destination again replaces its settings: subscribing is idempotent, so a
retried job or a reconnect never leaves a second webhook. The settings are every action our
parser reads (webhooks.KNOWN_ACTIONS) under Kommo's name for it, `{action}_{entity}` in the
singular (`add_lead`, `status_lead`, `note_contact`, `update_talk`, `delete_unsorted`…).

Subscribing runs as a job (crm.kommo.tasks), never inside the transaction that keeps the
connection; its outcome is recorded on the connection, so the API shows when the webhook was
subscribed or why it was not. Removing is best effort: an account Kommo no longer lets us
into still gets disconnected here, and the connection says what may be left in Kommo.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import structlog

from agent_platform.crm import repository
from agent_platform.crm.kommo.errors import KommoAccountStopped, KommoAuthError, KommoError
from agent_platform.crm.kommo.session import call_kommo
from agent_platform.crm.kommo.tokens import KommoConnectionInactive
from agent_platform.crm.kommo.webhooks import KNOWN_ACTIONS, EventFamily
from agent_platform.crm.models import CrmConnection
from agent_platform.db.session import transaction
from agent_platform.kit.transient import is_transient
from agent_platform.services import Services

log = structlog.get_logger("kommo.webhook_subscription")

# Kommo's word for each family in a setting's name.
_SETTING_NOUNS = {
    EventFamily.LEADS: "lead",
    EventFamily.CONTACTS: "contact",
    EventFamily.COMPANIES: "company",
    EventFamily.CUSTOMERS: "customer",
    EventFamily.TASKS: "task",
    EventFamily.TALKS: "talk",
    EventFamily.UNSORTED: "unsorted",
}


def _kommo_settings(family: EventFamily, action: str) -> tuple[str, ...]:
    if family is EventFamily.MESSAGES:
        # Both directions arrive as message[add]; Kommo subscribes to each on its own.
        return (f"{action}_message", f"{action}_outgoing_message")
    return (f"{action}_{_SETTING_NOUNS[family]}",)


WEBHOOK_SETTINGS: tuple[str, ...] = tuple(
    sorted(
        setting
        for family, actions in KNOWN_ACTIONS.items()
        for action in actions
        for setting in _kommo_settings(family, action)
    )
)


def webhook_destination(public_base_url: str, webhook_token: str) -> str:
    """Where Kommo sends a connection's events: the token names the connection."""
    return f"{public_base_url.rstrip('/')}/webhooks/kommo/{webhook_token}"


async def subscribe(services: Services, connection_id: uuid.UUID, destination: str) -> None:
    """Subscribe `destination` to every setting and record the outcome on the connection.

    A failure is recorded and raised, for the job to retry when it may pass; a connection
    switched off meanwhile is left alone (connecting it again subscribes again).
    """
    try:
        await call_kommo(
            services,
            connection_id,
            lambda kommo: kommo.webhooks.subscribe(destination, WEBHOOK_SETTINGS),
        )
    except KommoConnectionInactive:
        log.info("kommo_webhook_not_subscribed", reason="the connection is not active")
        return
    except KommoError as exc:
        retrying = " (trying again)" if is_transient(exc) else ""
        async with transaction(services.sessions) as session:
            await repository.record_webhook_error(
                session, connection_id, f"{_why_not(exc)}{retrying}"[:1000]
            )
        raise
    async with transaction(services.sessions) as session:
        await repository.record_webhook_subscribed(session, connection_id, destination)
    log.info("kommo_webhook_subscribed", destination=destination)


@dataclass(frozen=True)
class WebhookRemoval:
    removed: bool  # no webhook of ours is left in Kommo (removed now, or none was there)
    note: str | None = None  # when not: why, and what the admin can do


async def unsubscribe(services: Services, connection: CrmConnection) -> WebhookRemoval:
    """Remove our webhook from the connection's account, as far as Kommo lets us."""
    if connection.access_token_encrypted is None:
        # Disconnected before, or uninstalled (Kommo then removed the webhook itself): what
        # was known then still holds.
        return WebhookRemoval(
            removed=False,
            note=connection.webhook_error
            or "No Kommo token is held for this connection, so Kommo was not asked to remove "
            "our webhook.",
        )
    destination = connection.webhook_destination or webhook_destination(
        services.settings.public_base_url, connection.webhook_token
    )
    try:
        await call_kommo(
            services, connection.id, lambda kommo: kommo.webhooks.unsubscribe(destination)
        )
    except KommoError as exc:
        log.warning("kommo_webhook_not_removed", error=repr(exc))
        return WebhookRemoval(
            removed=False,
            note=f"Our webhook could not be removed from Kommo: {_why_not(exc)}. If "
            f"{destination} is still listed in the account's Settings > Integrations > "
            "Web hooks, delete it there.",
        )
    log.info("kommo_webhook_removed", destination=destination)
    return WebhookRemoval(removed=True)


def _why_not(exc: KommoError) -> str:
    if isinstance(exc, KommoAuthError):
        return "Kommo does not accept the connection's token any more"
    if isinstance(exc, KommoAccountStopped):
        return f"Kommo refuses calls for this account ({exc.detail})"
    if is_transient(exc):
        return f"Kommo could not be reached ({exc.detail})"
    return f"Kommo refused the request ({exc.detail})"
