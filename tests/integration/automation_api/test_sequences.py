"""/api/v1/sequences and enrollments over HTTP: create, read, change (the version rises with
the steps), delete, enable; the dry run per step; enrolling a lead once, stopping, pausing and
resuming; another organization's sequence and enrollment are not found."""

from __future__ import annotations

import httpx
from sqlalchemy import text

from agent_platform.db.session import transaction
from agent_platform.services import Services
from tests.integration.automation_api.helpers import (
    ENROLLMENTS,
    SEQUENCES,
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

TWO_STEPS = [
    {
        "name": "nudge",
        "delay": {"after_minutes": 60},
        "conditions": {"field": "lead.price", "operator": "gt", "value": 100},
        "actions": [{"type": "send_message", "text": "Hi {{ lead.name }}"}],
    },
    {"delay": {"after_minutes": 1440}, "actions": [{"type": "add_tag", "tag": "cold"}]},
]


async def test_a_sequence_is_created_changed_and_its_version_rises_with_its_steps(
    acme: httpx.AsyncClient,
) -> None:
    sequence = await created(acme, SEQUENCES, sequence_body())
    assert sequence["version"] == 1
    assert sequence["stop_on"] == {"lead_replied": True, "stages": [], "won_or_lost": False}
    assert await ok(await acme.get(f"{SEQUENCES}/{sequence['id']}")) == sequence
    path = f"{SEQUENCES}/{sequence['id']}"

    renamed = await ok(await acme.patch(path, json={"name": "Warm-up 2"}))
    assert (renamed["name"], renamed["version"]) == ("Warm-up 2", 1)
    restepped = await ok(await acme.patch(path, json={"steps": TWO_STEPS}))
    assert (len(restepped["steps"]), restepped["version"]) == (2, 2)
    stopped_on = await ok(await acme.patch(path, json={"stop_on": {"won_or_lost": True}}))
    assert stopped_on["version"] == 3
    same = await ok(await acme.patch(path, json={"steps": TWO_STEPS}))
    assert same["version"] == 3  # nothing changed

    assert (await ok(await acme.post(f"{path}/disable")))["enabled"] is False
    assert [s["id"] for s in await all_pages(acme, SEQUENCES, enabled="false")] == [sequence["id"]]
    assert (await ok(await acme.post(f"{path}/enable")))["enabled"] is True
    assert (await acme.delete(path)).status_code == 204
    assert_error(await acme.get(path), 404, "sequence_not_found")


async def test_sequences_are_listed_a_page_at_a_time(acme: httpx.AsyncClient) -> None:
    ids = [(await created(acme, SEQUENCES, sequence_body(name=f"s{n}")))["id"] for n in range(3)]
    assert [s["id"] for s in await all_pages(acme, SEQUENCES, limit=2)] == ids[::-1]


async def test_a_dry_run_evaluates_each_step_and_does_nothing(
    acme: httpx.AsyncClient, services: Services
) -> None:
    sequence = await created(acme, SEQUENCES, sequence_body(steps=TWO_STEPS))
    before = await counts(services)

    found = await ok(
        await acme.post(
            f"{SEQUENCES}/{sequence['id']}/dry-run",
            json={"event": {"lead": {"name": "Ann", "price": 50}}},
        )
    )

    first, second = found["steps"]
    assert (first["index"], first["name"], first["matched"]) == (0, "nudge", False)
    assert first["trace"]["seen"] == 50
    assert first["would_perform"] == []
    assert (second["matched"], second["would_perform"]) == (
        True,
        [{"type": "add_tag", "tag": "cold"}],
    )
    assert await counts(services) == before


async def test_a_lead_is_enrolled_once_and_its_enrollment_stopped_paused_and_resumed(
    acme: httpx.AsyncClient, services: Services, connected: ConnectedAgent
) -> None:
    sequence = await created(acme, SEQUENCES, sequence_body())
    enrollments = f"{SEQUENCES}/{sequence['id']}/enrollments"
    lead = {"connection_id": str(connected.connection_id), "lead_id": 7}

    enrollment = await created(acme, enrollments, lead)
    assert (enrollment["status"], enrollment["lead_id"], enrollment["sequence_version"]) == (
        "active",
        7,
        1,
    )
    assert enrollment["next_step_at"] is not None
    assert_error(await acme.post(enrollments, json=lead), 409, "already_enrolled")

    paused = await ok(await acme.post(f"{ENROLLMENTS}/{enrollment['id']}/pause"))
    assert paused["status"] == "paused"
    assert_error(await acme.post(f"{ENROLLMENTS}/{enrollment['id']}/pause"), 409, "conflict")
    assert (await ok(await acme.post(f"{ENROLLMENTS}/{enrollment['id']}/resume")))[
        "status"
    ] == "active"
    stopped = await ok(await acme.post(f"{ENROLLMENTS}/{enrollment['id']}/stop"))
    assert (stopped["status"], stopped["stop_reason"]) == ("stopped", "stopped by API")
    async with transaction(services.sessions) as session:
        statuses = (
            await session.scalars(
                text(
                    "SELECT status::text FROM procrastinate_jobs "
                    "WHERE task_name = 'run_sequence_step'"
                )
            )
        ).all()
    assert "todo" not in statuses  # the pending step was cancelled

    again = await created(acme, enrollments, lead)  # a stopped enrollment may be followed
    assert [e["id"] for e in await all_pages(acme, enrollments)] == [again["id"], enrollment["id"]]
    assert [e["id"] for e in await all_pages(acme, enrollments, status="stopped")] == [
        enrollment["id"]
    ]

    await acme.post(f"{SEQUENCES}/{sequence['id']}/disable")
    other_lead = lead | {"lead_id": 8}
    assert_error(await acme.post(enrollments, json=other_lead), 409, "sequence_disabled")


async def test_deleting_a_sequence_stops_its_enrollments_unless_a_trigger_names_it(
    acme: httpx.AsyncClient, services: Services, connected: ConnectedAgent
) -> None:
    sequence = await created(acme, SEQUENCES, sequence_body())
    await created(
        acme,
        f"{SEQUENCES}/{sequence['id']}/enrollments",
        {"connection_id": str(connected.connection_id), "lead_id": 7},
    )
    trigger = await created(
        acme,
        TRIGGERS,
        trigger_body(actions=[{"type": "start_sequence", "sequence_id": sequence["id"]}]),
    )

    assert_error(await acme.delete(f"{SEQUENCES}/{sequence['id']}"), 409, "sequence_in_use")
    await acme.delete(f"{TRIGGERS}/{trigger['id']}")
    assert (await acme.delete(f"{SEQUENCES}/{sequence['id']}")).status_code == 204

    async with transaction(services.sessions) as session:
        pending = await session.scalar(
            text(
                "SELECT count(*) FROM procrastinate_jobs "
                "WHERE task_name = 'run_sequence_step' AND status = 'todo'"
            )
        )
    assert pending == 0


async def test_another_organizations_sequence_and_enrollment_are_not_found(
    acme: httpx.AsyncClient, beta: httpx.AsyncClient, services: Services, connected: ConnectedAgent
) -> None:
    sequence = await created(acme, SEQUENCES, sequence_body())
    path = f"{SEQUENCES}/{sequence['id']}"
    lead = {"connection_id": str(connected.connection_id), "lead_id": 7}
    enrollment = await created(acme, f"{path}/enrollments", lead)
    before = await counts(services)

    for response in [
        await beta.get(path),
        await beta.patch(path, json={"name": "x"}),
        await beta.delete(path),
        await beta.post(f"{path}/enable"),
        await beta.post(f"{path}/dry-run", json={}),
        await beta.get(f"{path}/enrollments"),
        await beta.post(f"{path}/enrollments", json=lead),
    ]:
        assert_error(response, 404, "sequence_not_found")
    for action in ("stop", "pause", "resume"):
        assert_error(
            await beta.post(f"{ENROLLMENTS}/{enrollment['id']}/{action}"),
            404,
            "enrollment_not_found",
        )
    assert await counts(services) == before
