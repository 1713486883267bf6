"""Performing automation actions against the Kommo sandbox over real HTTP: each action's
effect is visible in the sandbox (or our database); an action performed again under the
same run and index (a retried job) writes its message or note once; refusals become failed
outcomes that say why; a webhook action reaches a local receiver when private networks are
allowed and is refused when they are not."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import TypeAdapter
from sqlalchemy import select, text

from agent_platform.agent.service import answer_inbox_event
from agent_platform.automation.actions import Action
from agent_platform.automation.events import Origin
from agent_platform.automation.executor import ActionContext, ActionOutcome, perform
from agent_platform.automation.models import Enrollment, ExpectedEcho, Sequence
from agent_platform.conversation.models import Conversation, Message
from agent_platform.crm.models import CrmDelivery
from agent_platform.crm.sandbox.store import (
    DEMO_LEAD_ID,
    LEAD_BUDGET_FIELD_ID,
    LEAD_SOURCE_FIELD_ID,
    MANAGER_USER_ID,
    PARTNERS_NEGOTIATION_STATUS_ID,
    PARTNERS_PIPELINE_ID,
)
from agent_platform.db.session import transaction
from agent_platform.services import Services
from tests.integration.test_follow_up import customer_writes
from tests.integration.test_llm_reply_flow import sandbox_notes
from tests.support.crm_records import kommo_tasks
from tests.support.factories import ConnectedAgent, use_reply_channel
from tests.support.jobs import run_queued_jobs
from tests.support.receiver import Receiver

OFFER_MADE_STATUS_ID = 7_000_013
ORIGIN = Origin(trigger_ids=("trigger-1",), depth=1)
FACTS = {"lead.name": "Ann's sofa", "lead.price": 1500, "event.type": "lead_status_changed"}
ACTION = TypeAdapter[Action](Action)


@pytest.fixture
async def kommo(sandbox: tuple[str, str]) -> AsyncIterator[httpx.AsyncClient]:
    url, token = sandbox
    async with httpx.AsyncClient(
        base_url=url, headers={"Authorization": f"Bearer {token}"}
    ) as client:
        # The test reads the sandbox beside the platform's requests: together they would
        # exceed Kommo's limit, which the platform keeps alone (test_kommo_rate_limit).
        (await client.post("/sandbox/faults", json={"rate_limit": False})).raise_for_status()
        yield client


def context(
    services: Services,
    connected: ConnectedAgent,
    *,
    run_id: uuid.UUID | None = None,
    index: int = 0,
    lead_id: int | None = DEMO_LEAD_ID,
) -> ActionContext:
    return ActionContext(
        services=services,
        organization_id=connected.organization_id,
        connection_id=connected.connection_id,
        lead_id=lead_id,
        facts=FACTS,
        run_id=run_id or uuid.uuid4(),
        index=index,
        origin=ORIGIN,
    )


async def act(services: Services, connected: ConnectedAgent, **action: Any) -> ActionOutcome:
    return await perform(ACTION.validate_python(action), context(services, connected))


async def lead(kommo: httpx.AsyncClient) -> dict[str, Any]:
    response = await kommo.get(f"/api/v4/leads/{DEMO_LEAD_ID}")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def tag_names(lead_body: dict[str, Any]) -> list[str]:
    return [tag["name"] for tag in lead_body["_embedded"]["tags"]]


def field_values(lead_body: dict[str, Any], field_id: int) -> list[dict[str, Any]]:
    fields = lead_body.get("custom_fields_values") or []
    return next((f["values"] for f in fields if f["field_id"] == field_id), [])


async def note_texts(sandbox: tuple[str, str]) -> list[str]:
    return [note["params"]["text"] for note in await sandbox_notes(sandbox[0])]


async def expected_echoes(services: Services) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    async with transaction(services.sessions) as session:
        rows = await session.scalars(select(ExpectedEcho).order_by(ExpectedEcho.expires_at))
        return [(row.event_type, row.match, row.origin) for row in rows]


async def a_conversation(services: Services, connected: ConnectedAgent) -> uuid.UUID:
    """The lead wrote and the agent answered (a note, the connection's channel)."""
    event_id = await customer_writes(services, connected, "Is the sofa in stock?")
    await answer_inbox_event(services, event_id)
    async with transaction(services.sessions) as session:
        return (await session.scalars(select(Conversation.id))).one()


async def test_crm_actions_change_the_lead_in_kommo_and_announce_their_echoes(
    services: Services, connected: ConnectedAgent, kommo: httpx.AsyncClient
) -> None:
    outcomes = [
        await act(services, connected, type="move_stage", status_id=OFFER_MADE_STATUS_ID),
        await act(services, connected, type="add_tag", tag="hot"),
        await act(services, connected, type="add_tag", tag="cold"),
        await act(services, connected, type="remove_tag", tag="COLD"),
        await act(
            services,
            connected,
            type="set_field",
            field=LEAD_BUDGET_FIELD_ID,
            value="{{ lead.price }}",
        ),
        await act(services, connected, type="assign", user_id=MANAGER_USER_ID),
        await act(
            services,
            connected,
            type="create_task",
            text="Call {{ lead.name }}",
            due_in_minutes=90,
        ),
    ]
    await run_queued_jobs(services)  # the task's push to Kommo

    assert [o.status for o in outcomes] == ["succeeded"] * len(outcomes), outcomes
    changed = await lead(kommo)
    assert changed["status_id"] == OFFER_MADE_STATUS_ID
    assert tag_names(changed) == ["hot"]
    assert field_values(changed, LEAD_BUDGET_FIELD_ID)[0]["value"] in (1500, "1500")
    assert changed["responsible_user_id"] == MANAGER_USER_ID
    [task] = [t for t in await kommo_tasks(kommo) if t["text"] == "Call Ann's sofa"]
    assert task["entity_id"] == DEMO_LEAD_ID
    assert outcomes[-1].detail["text"] == "Call Ann's sofa"
    # Each change Kommo will report back by webhook carries the action's origin.
    assert [(kind, match) for kind, match, _ in await expected_echoes(services)] == [
        ("lead_status_changed", {"to_status_id": OFFER_MADE_STATUS_ID}),
        ("lead_tag_added", {"tag": "hot"}),
        ("lead_tag_added", {"tag": "cold"}),
        ("lead_field_changed", {"field_id": LEAD_BUDGET_FIELD_ID}),
        ("lead_responsible_changed", {"to_user_id": MANAGER_USER_ID}),
        ("task_created", {"text": "Call Ann's sofa"}),
    ]
    assert all(origin == ORIGIN.to_json() for _, _, origin in await expected_echoes(services))


async def test_a_stage_in_a_named_pipeline_and_a_field_cleared(
    services: Services, connected: ConnectedAgent, kommo: httpx.AsyncClient
) -> None:
    moved = await act(
        services,
        connected,
        type="move_stage",
        status_id=PARTNERS_NEGOTIATION_STATUS_ID,
        pipeline_id=PARTNERS_PIPELINE_ID,
    )
    await act(services, connected, type="set_field", field=LEAD_BUDGET_FIELD_ID, value="700")
    cleared = await act(
        services, connected, type="set_field", field=LEAD_BUDGET_FIELD_ID, value="  "
    )

    assert (moved.status, cleared.status) == ("succeeded", "succeeded")
    changed = await lead(kommo)
    assert changed["pipeline_id"] == PARTNERS_PIPELINE_ID
    assert changed["status_id"] == PARTNERS_NEGOTIATION_STATUS_ID
    assert field_values(changed, LEAD_BUDGET_FIELD_ID) == []


async def test_removing_the_lead_s_last_tag_or_one_it_lacks(
    services: Services, connected: ConnectedAgent, kommo: httpx.AsyncClient
) -> None:
    await act(services, connected, type="add_tag", tag="only")

    removed = await act(services, connected, type="remove_tag", tag="only")
    absent = await act(services, connected, type="remove_tag", tag="never there")

    assert (removed.status, absent.status) == ("succeeded", "succeeded")
    assert tag_names(await lead(kommo)) == []


async def test_a_note_is_added_once_when_its_action_is_performed_again(
    services: Services, connected: ConnectedAgent, sandbox: tuple[str, str]
) -> None:
    note = ACTION.validate_python({"type": "add_note", "text": "Budget: {{ lead.price }}"})
    retried = context(services, connected)

    first = await perform(note, retried)
    again = await perform(note, retried)
    another_run = await perform(note, context(services, connected))

    assert first == again == ActionOutcome("succeeded", {"text": "Budget: 1500"})
    assert another_run.status == "succeeded"
    assert await note_texts(sandbox) == ["Budget: 1500", "Budget: 1500"]


async def test_a_message_goes_to_the_lead_s_conversation_once(
    services: Services, connected: ConnectedAgent, sandbox: tuple[str, str]
) -> None:
    conversation_id = await a_conversation(services, connected)
    message = ACTION.validate_python({"type": "send_message", "text": "Hi, {{ lead.name }}!"})
    retried = context(services, connected, index=3)

    first = await perform(message, retried)
    again = await perform(message, retried)

    assert first == again
    assert first.detail == {"channel": "note", "text": "Hi, Ann's sofa!"}
    assert (await note_texts(sandbox)).count("Hi, Ann's sofa!") == 1
    async with transaction(services.sessions) as session:
        stored = await session.scalars(
            select(Message.content).where(
                Message.conversation_id == conversation_id, Message.role == "assistant"
            )
        )
        assert list(stored).count("Hi, Ann's sofa!") == 1
        key = f"automation:{retried.run_id}:3"
        delivery = await session.scalar(
            select(CrmDelivery).where(CrmDelivery.idempotency_key == key)
        )
        assert delivery is not None
        assert delivery.status == "sent"


async def test_a_message_to_a_lead_who_never_wrote(
    services: Services, connected: ConnectedAgent, sandbox: tuple[str, str]
) -> None:
    as_note = await act(services, connected, type="send_message", text="Welcome!")
    await use_reply_channel(
        services,
        connected.connection_id,
        "chats",
        chats_scope_id="scope",
        chats_secret="secret",
        chats_bot_id="bot",
    )
    in_chat = await act(services, connected, type="send_message", text="Welcome again!")

    assert as_note == ActionOutcome("succeeded", {"channel": "note", "text": "Welcome!"})
    assert await note_texts(sandbox) == ["Welcome!"]
    assert in_chat == ActionOutcome(
        "failed",
        {
            "error": f"cannot write to lead {DEMO_LEAD_ID}: the lead has not written yet: "
            "no chat to write to"
        },
    )


async def test_refusals_are_failed_outcomes_that_say_why(
    services: Services, connected: ConnectedAgent, kommo: httpx.AsyncClient
) -> None:
    before = await lead(kommo)

    unknown_stage = await act(services, connected, type="move_stage", status_id=999)
    wrong_pipeline = await act(
        services,
        connected,
        type="move_stage",
        status_id=OFFER_MADE_STATUS_ID,
        pipeline_id=PARTNERS_PIPELINE_ID,
    )
    bad_choice = await act(
        services, connected, type="set_field", field=LEAD_SOURCE_FIELD_ID, value="a pigeon"
    )
    unknown_code = await act(services, connected, type="set_field", field="NOPE", value="1")
    no_sequence = await act(
        services, connected, type="start_sequence", sequence_id=str(uuid.uuid4())
    )
    no_conversation = await act(services, connected, type="pause_agent", minutes=30)
    no_agent_conversation = await act(services, connected, type="run_agent", instruction="Hi")
    empty_note = await act(services, connected, type="add_note", text="{{ contact.name }}")
    leadless = await perform(
        ACTION.validate_python({"type": "add_tag", "tag": "x"}),
        context(services, connected, lead_id=None),
    )

    errors = {
        name: outcome.detail["error"]
        for name, outcome in {
            "unknown_stage": unknown_stage,
            "wrong_pipeline": wrong_pipeline,
            "bad_choice": bad_choice,
            "unknown_code": unknown_code,
            "no_sequence": no_sequence,
            "no_conversation": no_conversation,
            "no_agent_conversation": no_agent_conversation,
            "empty_note": empty_note,
            "leadless": leadless,
        }.items()
        if outcome.status == "failed"
    }
    assert errors == {
        "unknown_stage": "There is no stage with id 999.",
        "wrong_pipeline": (
            f"There is no stage with id {OFFER_MADE_STATUS_ID} in pipeline {PARTNERS_PIPELINE_ID}."
        ),
        "bad_choice": errors["bad_choice"],
        "unknown_code": "Leads have no custom field with the code 'NOPE'.",
        "no_sequence": errors["no_sequence"],
        "no_conversation": f"lead {DEMO_LEAD_ID} has no conversation with the agent yet",
        "no_agent_conversation": f"lead {DEMO_LEAD_ID} has no conversation with the agent yet",
        "empty_note": "the note is empty once its variables are filled in",
        "leadless": "the event concerns no lead",
    }
    assert "takes one of" in errors["bad_choice"]
    assert "not found" in errors["no_sequence"]
    after = await lead(kommo)
    assert (after["status_id"], after["custom_fields_values"]) == (
        before["status_id"],
        before["custom_fields_values"],
    )


async def test_pausing_and_resuming_the_agent_in_the_lead_s_conversation(
    services: Services, connected: ConnectedAgent
) -> None:
    conversation_id = await a_conversation(services, connected)
    before = datetime.now(UTC)

    paused = await act(services, connected, type="pause_agent", minutes=30)
    async with transaction(services.sessions) as session:
        on_pause = await session.get(Conversation, conversation_id)
        assert on_pause is not None
        assert on_pause.handed_off_at is not None
        assert on_pause.handoff_reason == "paused by an automation"
        assert on_pause.agent_paused_until is not None
        assert on_pause.agent_paused_until >= before + timedelta(minutes=30)
    resumed = await act(services, connected, type="resume_agent")

    assert (paused.status, resumed.status) == ("succeeded", "succeeded")
    async with transaction(services.sessions) as session:
        after = await session.get(Conversation, conversation_id)
        assert after is not None
        assert (after.handed_off_at, after.agent_paused_until) == (None, None)


async def test_run_agent_defers_the_agent_s_follow_up_in_the_lead_s_conversation(
    services: Services, connected: ConnectedAgent
) -> None:
    conversation_id = await a_conversation(services, connected)
    run = context(services, connected, index=2)

    outcome = await perform(
        ACTION.validate_python({"type": "run_agent", "instruction": "Offer a discount"}), run
    )

    assert outcome.status == "succeeded"
    async with transaction(services.sessions) as session:
        [args] = (
            await session.scalars(
                text("SELECT args FROM procrastinate_jobs WHERE task_name = 'send_follow_up'")
            )
        ).all()
    assert args["conversation_id"] == str(conversation_id)
    assert args["call_id"] == f"automation-{run.run_id}-2"
    assert args["topic"] == "Offer a discount"
    assert outcome.detail["conversation_id"] == str(conversation_id)


async def test_starting_and_stopping_a_sequence(
    services: Services, connected: ConnectedAgent
) -> None:
    async with transaction(services.sessions) as session:
        sequence = Sequence(
            organization_id=connected.organization_id,
            name="Warm up",
            steps=[
                {"delay": {"after_minutes": 60}, "actions": [{"type": "add_note", "text": "1"}]}
            ],
            stop_on={},
        )
        session.add(sequence)
        await session.flush()
        sequence_id = str(sequence.id)

    started = await act(services, connected, type="start_sequence", sequence_id=sequence_id)
    again = await act(services, connected, type="start_sequence", sequence_id=sequence_id)
    stopped = await act(services, connected, type="stop_sequence")

    assert started.status == again.status == stopped.status == "succeeded"
    assert started.detail["enrollment_id"] is not None
    assert again.detail["enrollment_id"] is None  # one open enrollment per lead and sequence
    assert stopped.detail["stopped"] == [started.detail["enrollment_id"]]
    async with transaction(services.sessions) as session:
        enrollment = await session.get(Enrollment, uuid.UUID(started.detail["enrollment_id"]))
        assert enrollment is not None
        assert enrollment.status == "stopped"
        assert enrollment.origin == ORIGIN.to_json()


async def test_wait_resumes_after_its_minutes(
    services: Services, connected: ConnectedAgent
) -> None:
    before = datetime.now(UTC)

    outcome = await act(services, connected, type="wait", minutes=45)

    assert (outcome.status, outcome.detail) == ("waiting", {"minutes": 45})
    assert outcome.resume_at is not None
    assert outcome.resume_at >= before + timedelta(minutes=45)


def allowing_private_networks(services: Services, allowed: bool) -> Services:
    settings = services.settings.model_copy(
        update={"automation_webhook_allow_private_networks": allowed}
    )
    return replace(services, settings=settings)


async def test_a_webhook_reaches_a_local_receiver_only_when_private_networks_are_allowed(
    services: Services, connected: ConnectedAgent
) -> None:
    receiver = Receiver()
    with receiver.serving() as url:
        action = ACTION.validate_python(
            {
                "type": "webhook",
                "url": f"{url}/hooks/lead",
                "payload": {"lead": "{{ lead.name }}", "n": 1},
            }
        )
        allowed = replace(
            context(services, connected), services=allowing_private_networks(services, True)
        )
        refused = replace(allowed, services=allowing_private_networks(services, False))

        delivered = await perform(action, allowed)
        not_sent = await perform(action, refused)
        receiver.status = 503
        answered_badly = await perform(action, allowed)

    assert delivered == ActionOutcome("succeeded", {"response_status": 200})
    assert not_sent.status == "failed"
    assert "127.0.0.1" in not_sent.detail["error"]
    assert answered_badly.status == "failed"
    assert answered_badly.detail["error"] == "the webhook answered 503"
    posted = receiver.at("/hooks/lead")
    assert len(posted) == 2
    assert json.loads(posted[0].body) == {"lead": "Ann's sofa", "n": 1}


async def test_a_webhook_without_a_payload_sends_the_facts(
    services: Services, connected: ConnectedAgent
) -> None:
    receiver = Receiver()
    with receiver.serving() as url:
        run = replace(
            context(services, connected), services=allowing_private_networks(services, True)
        )
        action = ACTION.validate_python({"type": "webhook", "url": f"{url}/hook"})
        outcome = await perform(action, run)

    assert outcome.status == "succeeded"
    [posted] = receiver.at("/hook")
    assert json.loads(posted.body) == {
        "event": FACTS,
        "lead_id": DEMO_LEAD_ID,
        "run_id": str(run.run_id),
    }
