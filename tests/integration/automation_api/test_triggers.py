"""/api/v1/triggers over HTTP: create, read, change, delete, enable, list filters; the dry run
(what it would do, rendered, doing nothing); the manual start; the webhook signing key;
another organization's trigger is not found."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import text

from agent_platform.automation.dispatch import DISPATCH_JOB
from agent_platform.automation.outbound_webhook import signing_secret
from agent_platform.db.session import transaction
from agent_platform.services import Services
from tests.integration.automation_api.helpers import (
    TRIGGERS,
    all_pages,
    counts,
    created,
    ok,
    sequence_body,
    trigger_body,
)
from tests.support.agents import assert_error
from tests.support.factories import ConnectedAgent


async def test_a_trigger_is_created_read_changed_and_deleted(
    acme: httpx.AsyncClient, connected: ConnectedAgent
) -> None:
    trigger = await created(
        acme, TRIGGERS, trigger_body(agent_id=str(connected.agent_id), priority=5)
    )
    assert trigger["event_type"] == "lead_status_changed"
    assert (trigger["priority"], trigger["enabled"]) == (5, True)
    assert trigger["actions"] == [{"type": "send_message", "text": "Hello, {{ lead.name }}!"}]
    assert await ok(await acme.get(f"{TRIGGERS}/{trigger['id']}")) == trigger

    changed = await ok(
        await acme.patch(
            f"{TRIGGERS}/{trigger['id']}",
            json={
                "event": {"type": "lead_silent", "after_minutes": 120},
                "conditions": None,
                "max_runs_per_lead_per_day": 2,
            },
        )
    )
    assert changed["event"] == {"type": "lead_silent", "after_minutes": 120}
    assert (changed["event_type"], changed["conditions"]) == ("lead_silent", None)
    assert changed["max_runs_per_lead_per_day"] == 2
    assert changed["actions"] == trigger["actions"]

    assert (await ok(await acme.post(f"{TRIGGERS}/{trigger['id']}/disable")))["enabled"] is False
    assert (await ok(await acme.post(f"{TRIGGERS}/{trigger['id']}/enable")))["enabled"] is True
    assert (await acme.delete(f"{TRIGGERS}/{trigger['id']}")).status_code == 204
    assert_error(await acme.get(f"{TRIGGERS}/{trigger['id']}"), 404, "trigger_not_found")


async def test_triggers_are_listed_by_agent_event_and_state_a_page_at_a_time(
    acme: httpx.AsyncClient, connected: ConnectedAgent
) -> None:
    agents = await created(acme, TRIGGERS, trigger_body(agent_id=str(connected.agent_id)))
    silent = await created(
        acme, TRIGGERS, trigger_body(event={"type": "lead_silent", "after_minutes": 30})
    )
    off = await created(acme, TRIGGERS, trigger_body(enabled=False))

    def ids(found: list[dict[str, object]]) -> list[object]:
        return [trigger["id"] for trigger in found]

    assert ids(await all_pages(acme, TRIGGERS, limit=1)) == [off["id"], silent["id"], agents["id"]]
    assert ids(await all_pages(acme, TRIGGERS, agent_id=str(connected.agent_id))) == [agents["id"]]
    assert ids(await all_pages(acme, TRIGGERS, event_type="lead_silent")) == [silent["id"]]
    assert ids(await all_pages(acme, TRIGGERS, enabled="false")) == [off["id"]]
    assert_error(await acme.get(TRIGGERS, params={"event_type": "nope"}), 422, "validation_error")


async def test_a_dry_run_shows_what_would_be_done_with_templates_filled_and_does_nothing(
    acme: httpx.AsyncClient, services: Services
) -> None:
    trigger = await created(
        acme,
        TRIGGERS,
        trigger_body(
            actions=[
                {"type": "send_message", "text": "Hello, {{ lead.name }}! {{ lead.tags }}"},
                {"type": "move_stage", "status_id": 142},
                {
                    "type": "webhook",
                    "url": "https://hooks.example.com/in",
                    "payload": {"who": "{{ contact.email }}", "n": 1},
                },
            ]
        ),
    )
    sample = {
        "data": {"from_status_id": 1, "to_status_id": 2},
        "lead": {"name": "Ann", "price": 1500, "tags": ["vip", "web"]},
        "contact": {"email": "ann@example.com"},
    }
    before = await counts(services)

    hot = await ok(await acme.post(f"{TRIGGERS}/{trigger['id']}/dry-run", json={"event": sample}))
    cold = await ok(
        await acme.post(
            f"{TRIGGERS}/{trigger['id']}/dry-run", json={"event": {"lead": {"price": 999}}}
        )
    )

    assert hot["matched"] is True
    assert hot["facts"]["event.type"] == "lead_status_changed"  # the trigger's event by default
    assert hot["trace"]["all"][0]["seen"] == 1500
    assert hot["would_perform"] == [
        {"type": "send_message", "text": "Hello, Ann! vip, web"},
        {"type": "move_stage", "status_id": 142, "pipeline_id": None},
        {
            "type": "webhook",
            "url": "https://hooks.example.com/in",
            "payload": {"who": "ann@example.com", "n": 1},
        },
    ]
    assert (cold["matched"], cold["would_perform"]) == (False, [])
    assert await counts(services) == before


async def test_a_manual_trigger_is_started_by_a_dispatch_job(
    acme: httpx.AsyncClient, services: Services, connected: ConnectedAgent
) -> None:
    manual = await created(acme, TRIGGERS, trigger_body(event={"type": "manual"}, conditions=None))
    other = await created(acme, TRIGGERS, trigger_body())
    lead = {"connection_id": str(connected.connection_id), "lead_id": 42}

    started = await acme.post(f"{TRIGGERS}/{manual['id']}/run", json=lead)

    assert started.status_code == 202, started.text
    async with transaction(services.sessions) as session:
        [(task, args)] = (
            await session.execute(
                text("SELECT task_name, args FROM procrastinate_jobs WHERE id = :id"),
                {"id": started.json()["job_id"]},
            )
        ).all()
    assert task == DISPATCH_JOB
    assert args["only_trigger_id"] == manual["id"]
    assert (args["event"]["type"], args["event"]["lead_id"]) == ("manual", 42)
    assert_error(
        await acme.post(f"{TRIGGERS}/{other['id']}/run", json=lead), 409, "trigger_not_manual"
    )
    unknown = lead | {"connection_id": str(uuid.uuid4())}
    assert_error(
        await acme.post(f"{TRIGGERS}/{manual['id']}/run", json=unknown), 422, "invalid_connection"
    )
    await acme.post(f"{TRIGGERS}/{manual['id']}/disable")
    assert_error(
        await acme.post(f"{TRIGGERS}/{manual['id']}/run", json=lead), 409, "trigger_disabled"
    )


async def test_the_webhook_secret_is_the_organizations_signing_key(
    acme: httpx.AsyncClient, beta: httpx.AsyncClient, services: Services, connected: ConnectedAgent
) -> None:
    secret = (await ok(await acme.get("/api/v1/automation/webhook-secret")))["secret"]
    assert services.settings.secret_key is not None
    assert secret == signing_secret(
        services.settings.secret_key.get_secret_value(), connected.organization_id
    )
    assert (await ok(await beta.get("/api/v1/automation/webhook-secret")))["secret"] != secret


async def test_another_organizations_trigger_is_not_found(
    acme: httpx.AsyncClient, beta: httpx.AsyncClient, services: Services, connected: ConnectedAgent
) -> None:
    trigger = await created(acme, TRIGGERS, trigger_body(event={"type": "manual"}))
    path = f"{TRIGGERS}/{trigger['id']}"
    before = await counts(services)

    refusals = [
        await beta.get(path),
        await beta.patch(path, json={"name": "mine now"}),
        await beta.delete(path),
        await beta.post(f"{path}/enable"),
        await beta.post(f"{path}/disable"),
        await beta.post(f"{path}/dry-run", json={}),
        await beta.post(
            f"{path}/run", json={"connection_id": str(connected.connection_id), "lead_id": 1}
        ),
    ]

    for response in refusals:
        assert_error(response, 404, "trigger_not_found")
    assert await all_pages(beta, TRIGGERS) == []
    assert await counts(services) == before
    assert await ok(await acme.get(path)) == trigger


async def test_references_to_another_organizations_objects_are_refused(
    acme: httpx.AsyncClient, beta: httpx.AsyncClient
) -> None:
    theirs = await created(beta, "/api/v1/sequences", sequence_body())
    their_rule = await created(
        beta,
        "/api/v1/rules",
        {"name": "r", "conditions": {"field": "lead.price", "operator": "gt", "value": 1}},
    )

    started = await acme.post(
        TRIGGERS,
        json=trigger_body(actions=[{"type": "start_sequence", "sequence_id": theirs["id"]}]),
    )
    referred = await acme.post(TRIGGERS, json=trigger_body(conditions={"rule": their_rule["id"]}))

    body = assert_error(started, 422, "invalid_automation")
    assert body["error"]["details"][0]["path"] == "actions[0].sequence_id"
    body = assert_error(referred, 422, "invalid_automation")
    assert body["error"]["details"][0]["path"] == "conditions"
