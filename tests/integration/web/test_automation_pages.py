"""The automation pages over HTTP: a trigger made and changed through the editor's form posts
(refusals shown with the path of the bad node, nothing stored), the dry run's trace, the
switches, the run log with its filters and pages, tenant scoping and permissions."""

from __future__ import annotations

import json
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select

from agent_platform.automation.events import AutomationEvent, EventType
from agent_platform.automation.models import RunKind, RunStatus, Trigger
from agent_platform.automation.runs.repository import record_run
from agent_platform.automation.sequences.schemas import SequenceIn
from agent_platform.automation.sequences.service import create_sequence
from agent_platform.automation.triggers.schemas import TriggerIn
from agent_platform.automation.triggers.service import TRIGGERS, create_trigger
from agent_platform.db.session import transaction
from agent_platform.organization.models import Role
from agent_platform.services import Services
from tests.support.people import Person, create_person
from tests.support.web_client import form_token, signed_in

PRICE_OVER_1000 = {"all": [{"field": "lead.price", "operator": "gt", "value": 1000}]}
TAG_HOT = [{"type": "add_tag", "tag": "hot"}]
LOCATION = re.compile(r"^/app/automation/triggers/([0-9a-f-]{36})\?saved=1$")


def editor_form(token: str, **changes: str) -> dict[str, str]:
    """What the editor posts for a trigger on a stage change: price > 1000 → tag it hot."""
    return {
        "csrf_token": token,
        "name": "Big deals",
        "agent_id": "",
        "event_type": "lead_status_changed",
        "after_minutes": "",
        "cron": "",
        "conditions": json.dumps(PRICE_OVER_1000),
        "actions": json.dumps(TAG_HOT),
        "priority": "5",
        "max_runs_per_lead_per_day": "3",
        "enabled": "on",
        **changes,
    }


async def triggers_of(services: Services, organization_id: uuid.UUID) -> list[Trigger]:
    async with transaction(services.sessions) as session:
        found = await session.scalars(
            select(Trigger).where(Trigger.organization_id == organization_id)
        )
        return list(found)


async def stored_trigger(services: Services, person: Person, **changes: Any) -> Trigger:
    body = {
        "name": "Stored trigger",
        "event": {"type": "lead_status_changed"},
        "conditions": PRICE_OVER_1000,
        "actions": TAG_HOT,
        **changes,
    }
    return await create_trigger(services, person.organization_id, TriggerIn.model_validate(body))


async def test_a_trigger_is_created_through_the_editor(services: Services, api_url: str) -> None:
    person = await create_person(services)
    async with signed_in(api_url, person) as client:
        page = await client.get("/app/automation/triggers/new")
        assert page.status_code == 200
        assert "data-rule-editor" in page.text

        saved = await client.post(
            "/app/automation/triggers/new", data=editor_form(form_token(page))
        )

        assert saved.status_code == 303, saved.text
        found = LOCATION.match(saved.headers["location"])
        assert found
        [trigger] = await triggers_of(services, person.organization_id)
        assert str(trigger.id) == found.group(1)
        assert trigger.name == "Big deals"
        assert trigger.event == {"type": "lead_status_changed"}
        assert trigger.conditions == PRICE_OVER_1000
        assert trigger.actions == TAG_HOT
        assert (trigger.priority, trigger.max_runs_per_lead_per_day, trigger.enabled) == (
            5,
            3,
            True,
        )

        shown = await client.get(saved.headers["location"])
        assert shown.status_code == 200
        assert 'data-testid="saved"' in shown.text
        listed = await client.get("/app/automation")
        assert "Big deals" in listed.text
        assert f"/app/automation/triggers/{trigger.id}" in listed.text


async def test_the_editor_changes_a_stored_trigger(services: Services, api_url: str) -> None:
    person = await create_person(services)
    trigger = await stored_trigger(services, person)
    async with signed_in(api_url, person) as client:
        page = await client.get(f"/app/automation/triggers/{trigger.id}")
        assert page.status_code == 200
        assert "Stored trigger" in page.text

        saved = await client.post(
            f"/app/automation/triggers/{trigger.id}",
            data=editor_form(
                form_token(page),
                event_type="lead_silent",
                after_minutes="120",
                conditions="",
                max_runs_per_lead_per_day="",
                enabled="",
            ),
        )

    assert saved.status_code == 303, saved.text
    changed = await TRIGGERS.get(services, person.organization_id, trigger.id)
    assert changed.event == {"type": "lead_silent", "after_minutes": 120}
    assert changed.conditions is None
    assert changed.max_runs_per_lead_per_day is None
    assert changed.enabled is False


async def test_an_invalid_tree_is_refused_with_the_path_of_the_bad_node(
    services: Services, api_url: str
) -> None:
    person = await create_person(services)
    bad_tree = {"all": [{"field": "lead.price", "operator": "gt", "value": "a lot"}]}
    async with signed_in(api_url, person) as client:
        token = form_token(await client.get("/app/automation/triggers/new"))

        refused = await client.post(
            "/app/automation/triggers/new",
            data=editor_form(token, conditions=json.dumps(bad_tree)),
        )
        no_action = await client.post(
            "/app/automation/triggers/new", data=editor_form(token, actions="[]")
        )
        not_json = await client.post(
            "/app/automation/triggers/new", data=editor_form(token, conditions="{all: [")
        )

    assert refused.status_code == 422
    assert 'data-testid="editor-error-path">conditions.all[0].value</code>' in refused.text
    assert "value for lead.price must be a number" in refused.text
    # The page comes back as it was posted, for the editor to draw it again.
    assert "a lot" in refused.text
    assert no_action.status_code == 422
    assert 'data-testid="editor-error-path">actions</code>' in no_action.text
    assert not_json.status_code == 422
    assert 'data-testid="editor-error-path">conditions</code>' in not_json.text
    assert await triggers_of(services, person.organization_id) == []


async def test_the_test_button_shows_the_trace_and_what_would_be_done(
    services: Services, api_url: str
) -> None:
    person = await create_person(services)
    async with signed_in(api_url, person) as client:
        token = form_token(await client.get("/app/automation/triggers/new"))
        headers = {"HX-Request": "true", "X-CSRF-Token": token}
        sample = {"sample_lead_name": "Acme deal", "sample_lead_tags": "vip, new"}

        matched = await client.post(
            "/app/automation/triggers/test",
            data=editor_form(token, sample_lead_price="1500", **sample),
            headers=headers,
        )
        failed = await client.post(
            "/app/automation/triggers/test",
            data=editor_form(token, sample_lead_price="500", **sample),
            headers=headers,
        )
        refused = await client.post(
            "/app/automation/triggers/test",
            data=editor_form(token, sample_lead_price="cheap"),
            headers=headers,
        )

    assert matched.status_code == 200
    assert "<html" not in matched.text, "HTMX gets the fragment only"
    assert "Matched: the trigger would fire." in matched.text
    assert 'class="trace-node is-matched"' in matched.text
    assert 'data-testid="trace-seen">1500</code>' in matched.text
    assert 'data-testid="would-perform"' in matched.text
    assert '<code>"hot"</code>' in matched.text
    assert "Not matched: the trigger would not fire." in failed.text
    assert 'data-testid="trace-seen">500</code>' in failed.text
    assert 'data-testid="would-perform-none"' in failed.text
    assert 'data-error-path="sample.lead.price"' in refused.text
    assert await triggers_of(services, person.organization_id) == []


async def test_the_test_without_htmx_answers_the_whole_editor(
    services: Services, api_url: str
) -> None:
    person = await create_person(services)
    async with signed_in(api_url, person) as client:
        token = form_token(await client.get("/app/automation/triggers/new"))
        answer = await client.post(
            "/app/automation/triggers/test",
            data=editor_form(token, sample_lead_price="2000"),
        )

    assert answer.status_code == 200
    assert "data-rule-editor" in answer.text
    assert "Matched: the trigger would fire." in answer.text


async def test_switches_turn_triggers_off_and_on(services: Services, api_url: str) -> None:
    person = await create_person(services)
    trigger = await stored_trigger(services, person)
    async with signed_in(api_url, person) as client:
        token = form_token(await client.get("/app/automation"))
        path = f"/app/automation/triggers/{trigger.id}/enabled"

        off = await client.post(path, data={"csrf_token": token, "enabled": "false"})
        assert off.status_code == 303
        assert (await TRIGGERS.get(services, person.organization_id, trigger.id)).enabled is False

        on = await client.post(
            path,
            data={"enabled": "true"},
            headers={"HX-Request": "true", "X-CSRF-Token": token},
        )
        assert on.status_code == 200
        assert "Disable" in on.text
        assert (await TRIGGERS.get(services, person.organization_id, trigger.id)).enabled is True


async def record_runs(
    services: Services, person: Person, trigger_id: uuid.UUID | None, count: int, kind: RunKind
) -> None:
    trace = {
        "all": [
            {
                "field": "lead.price",
                "operator": "gt",
                "value": 1000,
                "seen": 1500,
                "matched": True,
            }
        ],
        "matched": True,
    }
    async with transaction(services.sessions) as session:
        for number in range(count):
            await record_run(
                session,
                organization_id=person.organization_id,
                kind=kind,
                event=AutomationEvent(
                    type=EventType.LEAD_STATUS_CHANGED,
                    occurred_at=datetime.now(UTC),
                    lead_id=1000 + number,
                ),
                matched=True,
                trace=trace,
                actions=TAG_HOT,
                status=RunStatus.SUCCEEDED if kind is RunKind.TRIGGER else RunStatus.SKIPPED,
                trigger_id=trigger_id,
            )


async def test_the_run_log_lists_filters_and_pages_runs(services: Services, api_url: str) -> None:
    person = await create_person(services)
    trigger = await stored_trigger(services, person, name="Price watcher")
    await record_runs(services, person, trigger.id, 51, RunKind.TRIGGER)
    await record_runs(services, person, None, 1, RunKind.RULE)
    async with signed_in(api_url, person) as client:
        first = await client.get("/app/automation/runs")
        assert first.status_code == 200
        assert first.text.count('data-testid="run-row"') == 50
        assert "Price watcher" in first.text
        next_page = re.search(r'href="([^"]+)" data-testid="next-page"', first.text)
        assert next_page
        second = await client.get(next_page.group(1).replace("&amp;", "&"))
        assert second.text.count('data-testid="run-row"') == 2

        rules_only = await client.get("/app/automation/runs", params={"kind": "rule"})
        assert rules_only.text.count('data-testid="run-row"') == 1
        skipped = await client.get("/app/automation/runs", params={"status": "skipped"})
        assert skipped.text.count('data-testid="run-row"') == 1
        by_trigger = await client.get("/app/automation/runs", params={"trigger": str(trigger.id)})
        assert by_trigger.text.count('data-testid="run-row"') == 50
        by_lead = await client.get("/app/automation/runs", params={"lead": "1007"})
        assert by_lead.text.count('data-testid="run-row"') == 1
        unknown_kind = await client.get("/app/automation/runs", params={"kind": "nonsense"})
        assert unknown_kind.status_code == 422

        run_link = re.search(r'href="(/app/automation/runs/[0-9a-f-]{36})"', by_lead.text)
        assert run_link
        run = await client.get(run_link.group(1))
    assert run.status_code == 200
    assert 'data-testid="trace"' in run.text
    assert 'data-testid="trace-seen">1500</code>' in run.text


async def test_a_sequence_shows_its_steps(services: Services, api_url: str) -> None:
    person = await create_person(services)
    sequence = await create_sequence(
        services,
        person.organization_id,
        SequenceIn.model_validate(
            {
                "name": "Warm-up",
                "steps": [
                    {
                        "name": "Nudge",
                        "delay": {"after_minutes": 60},
                        "actions": [{"type": "add_tag", "tag": "warm"}],
                    }
                ],
            }
        ),
    )
    async with signed_in(api_url, person) as client:
        listed = await client.get("/app/automation")
        page = await client.get(f"/app/automation/sequences/{sequence.id}")

    assert "Warm-up" in listed.text
    assert page.status_code == 200
    assert "Nudge" in page.text
    assert "60 min after the previous step" in page.text
    assert "No lead has walked this sequence yet." in page.text


async def test_another_organizations_objects_are_not_found(
    services: Services, api_url: str
) -> None:
    owner = await create_person(services)
    trigger = await stored_trigger(services, owner)
    await record_runs(services, owner, trigger.id, 1, RunKind.TRIGGER)
    stranger = await create_person(services, organization_name="Other Co")
    async with signed_in(api_url, stranger) as client:
        token = form_token(await client.get("/app/automation"))
        shown = await client.get(f"/app/automation/triggers/{trigger.id}")
        changed = await client.post(
            f"/app/automation/triggers/{trigger.id}", data=editor_form(token, name="Stolen")
        )
        switched = await client.post(
            f"/app/automation/triggers/{trigger.id}/enabled",
            data={"csrf_token": token, "enabled": "false"},
        )
        runs = await client.get("/app/automation/runs")

    assert shown.status_code == 404
    assert changed.status_code == 404
    assert switched.status_code == 404
    assert 'data-testid="no-runs"' in runs.text
    unchanged = await TRIGGERS.get(services, owner.organization_id, trigger.id)
    assert (unchanged.name, unchanged.enabled) == ("Stored trigger", True)


async def test_a_viewer_sees_but_cannot_save(services: Services, api_url: str) -> None:
    viewer = await create_person(services, role=Role.VIEWER)
    trigger = await stored_trigger(services, viewer)
    async with signed_in(api_url, viewer) as client:
        listed = await client.get("/app/automation")
        shown = await client.get(f"/app/automation/triggers/{trigger.id}")
        token = form_token(listed)
        created = await client.post("/app/automation/triggers/new", data=editor_form(token))
        changed = await client.post(
            f"/app/automation/triggers/{trigger.id}", data=editor_form(token, name="Changed")
        )
        switched = await client.post(
            f"/app/automation/triggers/{trigger.id}/enabled",
            data={"csrf_token": token, "enabled": "false"},
        )
        new_page = await client.get("/app/automation/triggers/new")

    assert listed.status_code == 200
    assert 'data-testid="new-trigger"' not in listed.text
    assert shown.status_code == 200
    assert 'data-testid="save"' not in shown.text
    assert (created.status_code, changed.status_code, switched.status_code) == (403, 403, 403)
    assert new_page.status_code == 403
    [unchanged] = await triggers_of(services, viewer.organization_id)
    assert (unchanged.name, unchanged.enabled) == ("Stored trigger", True)
