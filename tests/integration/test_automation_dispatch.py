"""From a Kommo webhook to the triggers: runs recorded with their traces, actions performed in
the Kommo sandbox, run caps, and no loop on the echo of a trigger's own change."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from sqlalchemy import select, text

from agent_platform.agent.manager_messages import OWN_MSGID_PREFIX
from agent_platform.automation.events import EventType
from agent_platform.automation.models import AutomationRun, Trigger
from agent_platform.crm.records.service import PlannedTask, store_task
from agent_platform.crm.sandbox.store import DEMO_LEAD_ID, INITIAL_CONTACT_STATUS_ID, PIPELINE_ID
from agent_platform.db.session import transaction
from agent_platform.services import Services
from tests.support.factories import ConnectedAgent, message_form, receive_webhook
from tests.support.jobs import run_queued_jobs

NEGOTIATION = 7_000_013
PROPOSAL = 7_000_014
_modified = itertools.count(1_700_000_000)


async def add_trigger(
    services: Services,
    connected: ConnectedAgent,
    *,
    actions: list[dict[str, Any]],
    conditions: dict[str, Any] | None = None,
    event_type: EventType = EventType.LEAD_STATUS_CHANGED,
    parameters: dict[str, Any] | None = None,
    **columns: Any,
) -> uuid.UUID:
    """A trigger stored as the API stores one; `parameters` of its event (after_minutes, cron)."""
    async with transaction(services.sessions) as session:
        trigger = Trigger(
            organization_id=connected.organization_id,
            name=f"trigger {uuid.uuid4().hex[:6]}",
            event={"type": event_type.value, **(parameters or {})},
            event_type=event_type.value,
            conditions=conditions,
            actions=actions,
            **columns,
        )
        session.add(trigger)
        await session.flush()
        return trigger.id


async def lead_moved(services: Services, connected: ConnectedAgent, *, old: int, new: int) -> None:
    """Kommo's `leads[status]` webhook about the demo lead, accepted as the endpoint does."""
    item = {
        "id": DEMO_LEAD_ID,
        "name": "Demo lead",
        "status_id": new,
        "pipeline_id": PIPELINE_ID,
        "old_status_id": old,
        "old_pipeline_id": PIPELINE_ID,
        "price": 0,
        "last_modified": next(_modified),
    }
    form = {f"leads[status][0][{key}]": str(value) for key, value in item.items()}
    await receive_webhook(services, connected, form | {"account[id]": "1"})


async def chat_message(
    services: Services, connected: ConnectedAgent, message_id: str, direction: str
) -> None:
    """Kommo's `message[add]` webhook of a message in the demo lead's chat."""
    form = message_form(message_id, "Hello there", lead_id=DEMO_LEAD_ID, direction=direction)
    await receive_webhook(services, connected, form)


async def store_demo_task(services: Services, connected: ConnectedAgent, text: str) -> None:
    """A task on the demo lead stored as the API, an agent or an action stores one."""
    async with transaction(services.sessions) as session:
        await store_task(
            session,
            services,
            PlannedTask(
                organization_id=connected.organization_id,
                connection_id=connected.connection_id,
                entity_type="leads",
                entity_id=DEMO_LEAD_ID,
                text=text,
                complete_till=datetime.now(UTC) + timedelta(hours=1),
            ),
        )


async def runs(services: Services) -> list[AutomationRun]:
    async with transaction(services.sessions) as session:
        return list(await session.scalars(select(AutomationRun).order_by(AutomationRun.created_at)))


async def sandbox_lead(sandbox: tuple[str, str]) -> dict[str, Any]:
    url, token = sandbox
    async with httpx.AsyncClient() as kommo:
        response = await kommo.get(
            f"{url}/api/v4/leads/{DEMO_LEAD_ID}", headers={"Authorization": f"Bearer {token}"}
        )
    response.raise_for_status()
    lead: dict[str, Any] = response.json()
    return lead


def tags(lead: dict[str, Any]) -> list[str]:
    return [tag["name"] for tag in lead.get("_embedded", {}).get("tags", [])]


def moved_to(status_id: int) -> dict[str, Any]:
    return {"field": "event.to_status_id", "operator": "equals", "value": status_id}


async def test_a_status_change_fires_the_matching_trigger_and_records_the_other_as_skipped(
    services: Services, connected: ConnectedAgent, sandbox: tuple[str, str]
) -> None:
    fired = await add_trigger(
        services,
        connected,
        conditions={"all": [moved_to(NEGOTIATION)]},
        actions=[{"type": "add_tag", "tag": "negotiating"}],
        priority=10,
    )
    not_fired = await add_trigger(
        services,
        connected,
        conditions=moved_to(PROPOSAL),
        actions=[{"type": "add_tag", "tag": "proposal"}],
    )

    await lead_moved(services, connected, old=INITIAL_CONTACT_STATUS_ID, new=NEGOTIATION)
    await run_queued_jobs(services)

    by_trigger = {run.trigger_id: run for run in await runs(services)}
    assert set(by_trigger) == {fired, not_fired}
    run = by_trigger[fired]
    assert (run.kind, run.status, run.matched, run.error) == ("trigger", "succeeded", True, None)
    assert run.lead_id == DEMO_LEAD_ID
    assert run.event["data"]["from_status_id"] == INITIAL_CONTACT_STATUS_ID
    assert [(r["type"], r["status"]) for r in run.results] == [("add_tag", "succeeded")]
    assert run.finished_at is not None
    assert run.duration_ms is not None
    skipped = by_trigger[not_fired]
    assert (skipped.status, skipped.matched, skipped.results) == ("skipped", False, [])
    assert skipped.trace is not None
    assert skipped.trace["matched"] is False
    assert skipped.trace["seen"] == NEGOTIATION
    assert tags(await sandbox_lead(sandbox)) == ["negotiating"]


async def test_a_retried_dispatch_records_no_second_run(
    services: Services, connected: ConnectedAgent, sandbox: tuple[str, str]
) -> None:
    await add_trigger(services, connected, actions=[{"type": "add_tag", "tag": "moved"}])
    await lead_moved(services, connected, old=INITIAL_CONTACT_STATUS_ID, new=NEGOTIATION)
    await run_queued_jobs(services)
    # The dispatch job again, as a retry would run it.
    async with transaction(services.sessions) as session:
        await session.execute(
            text(
                "UPDATE procrastinate_jobs SET status = 'todo' "
                "WHERE task_name = 'dispatch_automation_event'"
            )
        )
    await run_queued_jobs(services)

    assert [run.status for run in await runs(services)] == ["succeeded"]


async def test_nothing_is_queued_for_automation_when_nothing_waits(
    services: Services, connected: ConnectedAgent
) -> None:
    await lead_moved(services, connected, old=INITIAL_CONTACT_STATUS_ID, new=NEGOTIATION)

    async with transaction(services.sessions) as session:
        queued = await session.scalar(
            text("SELECT count(*) FROM procrastinate_jobs WHERE task_name LIKE '%automation%'")
        )
    assert queued == 0


async def test_the_run_cap_skips_runs_beyond_it(
    services: Services, connected: ConnectedAgent, sandbox: tuple[str, str]
) -> None:
    capped = await add_trigger(
        services,
        connected,
        actions=[{"type": "add_note", "text": "Moved to {{ event.to_status_id }}"}],
        max_runs_per_lead_per_day=1,
    )

    await lead_moved(services, connected, old=INITIAL_CONTACT_STATUS_ID, new=NEGOTIATION)
    await run_queued_jobs(services)
    await lead_moved(services, connected, old=NEGOTIATION, new=PROPOSAL)
    await run_queued_jobs(services)

    first, second = await runs(services)
    assert (first.trigger_id, first.status) == (capped, "succeeded")
    assert (second.trigger_id, second.status, second.error) == (
        capped,
        "skipped",
        "run cap reached",
    )


async def test_the_echo_of_a_triggers_own_stage_change_does_not_fire_it_again(
    services: Services, connected: ConnectedAgent, sandbox: tuple[str, str]
) -> None:
    mover = await add_trigger(
        services,
        connected,
        actions=[{"type": "move_stage", "status_id": PROPOSAL, "pipeline_id": PIPELINE_ID}],
    )

    await lead_moved(services, connected, old=INITIAL_CONTACT_STATUS_ID, new=NEGOTIATION)
    await run_queued_jobs(services)
    assert (await sandbox_lead(sandbox))["status_id"] == PROPOSAL
    # Kommo tells us about the move the trigger made.
    await lead_moved(services, connected, old=NEGOTIATION, new=PROPOSAL)
    await run_queued_jobs(services)

    first, echo = await runs(services)
    assert (first.trigger_id, first.status) == (mover, "succeeded")
    assert (echo.trigger_id, echo.status, echo.chain_depth) == (mover, "skipped", 1)
    assert echo.error is not None
    assert echo.error.startswith("loop:")
    assert echo.event["origin"]["trigger_ids"] == [str(mover)]
    # A person moving the lead afterwards is no echo: the trigger fires again.
    await lead_moved(services, connected, old=PROPOSAL, new=NEGOTIATION)
    await run_queued_jobs(services)
    assert [run.status for run in await runs(services)] == ["succeeded", "skipped", "succeeded"]


async def test_a_task_stored_on_a_lead_is_a_task_created_event(
    services: Services, connected: ConnectedAgent, sandbox: tuple[str, str]
) -> None:
    trigger = await add_trigger(
        services,
        connected,
        event_type=EventType.TASK_CREATED,
        conditions={"field": "event.task_text", "operator": "contains", "value": "call"},
        actions=[{"type": "add_tag", "tag": "task"}],
    )
    await store_demo_task(services, connected, "call the customer back")
    await run_queued_jobs(services)

    [run] = await runs(services)
    assert (run.trigger_id, run.event_type, run.status) == (trigger, "task_created", "succeeded")
    assert run.event["data"]["text"] == "call the customer back"


async def test_a_trigger_creating_a_task_on_task_created_does_not_fire_on_its_own_task(
    services: Services, connected: ConnectedAgent, sandbox: tuple[str, str]
) -> None:
    trigger = await add_trigger(
        services,
        connected,
        event_type=EventType.TASK_CREATED,
        actions=[{"type": "create_task", "text": "Check: {{ event.task_text }}"}],
    )
    await store_demo_task(services, connected, "call the customer back")
    await run_queued_jobs(services)

    fired, refused = await runs(services)
    assert (fired.trigger_id, fired.status) == (trigger, "succeeded")
    assert (refused.trigger_id, refused.status) == (trigger, "skipped")
    assert refused.event["data"]["text"] == "Check: call the customer back"
    assert str(refused.error).startswith("loop")


async def test_a_managers_message_fires_message_outgoing_and_our_own_reply_does_not(
    services: Services, connected: ConnectedAgent, sandbox: tuple[str, str]
) -> None:
    trigger = await add_trigger(
        services,
        connected,
        event_type=EventType.MESSAGE_OUTGOING,
        actions=[{"type": "add_tag", "tag": "manager-talked"}],
    )
    await chat_message(services, connected, "customer-1", "incoming")
    await chat_message(services, connected, f"{OWN_MSGID_PREFIX}reply-1", "outgoing")
    await chat_message(services, connected, "manager-1", "outgoing")
    await run_queued_jobs(services)

    [run] = [r for r in await runs(services) if r.trigger_id == trigger]
    assert run.status == "succeeded"
    assert run.event["data"]["message_id"] == "manager-1"
