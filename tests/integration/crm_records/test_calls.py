"""Calls logged through the REST API, pushed to the Kommo sandbox by the real job queue.

The sandbox files a call as Kommo does: by the phone's last 10 digits, on the contact's one
open lead (the demo contact has one: the demo lead), kept as a call_in/call_out note.
"""

from __future__ import annotations

from typing import Any

import httpx

from agent_platform.crm.sandbox.store import DEMO_CONTACT_PHONE, DEMO_LEAD_ID
from agent_platform.services import Services
from tests.support.crm_records import CALLS, created, jobs, rows
from tests.support.jobs import run_queued_jobs


def call_request(**fields: Any) -> dict[str, Any]:
    return {
        "phone": DEMO_CONTACT_PHONE,
        "direction": "outbound",
        "duration": 95,
        "source": "acme-telephony",
    } | fields


async def call_notes(sandbox_url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as client:
        notes = (await client.get(f"{sandbox_url}/sandbox/notes")).json()["notes"]
    return [note for note in notes if note["note_type"] in ("call_in", "call_out")]


async def test_a_logged_call_reaches_kommo_on_the_contacts_open_lead(
    services: Services, acme: httpx.AsyncClient, sandbox: tuple[str, str]
) -> None:
    call = await created(
        acme,
        CALLS,
        call_request(
            uniq="call-0001",
            link="https://records.example/0001.mp3",
            call_status=4,
            call_result="Interested",
        ),
    )
    assert (call["sync_status"], call["kommo_id"], call["uniq"]) == ("pending", None, "call-0001")
    assert await jobs(services) == [("log_crm_call", "todo", 0)]

    await run_queued_jobs(services)

    [note] = await call_notes(sandbox[0])
    assert (note["note_type"], note["entity_type"], note["entity_id"]) == (
        "call_out",
        "leads",
        DEMO_LEAD_ID,
    )
    assert note["params"] == {
        "uniq": "call-0001",
        "duration": 95,
        "source": "acme-telephony",
        "link": "https://records.example/0001.mp3",
        "phone": DEMO_CONTACT_PHONE,
        "call_status": 4,
        "call_result": "Interested",
    }
    logged = (await acme.get(f"{CALLS}/{call['id']}")).json()
    assert logged["sync_status"] == "synced"
    assert logged["kommo_id"] is not None
    assert (logged["entity_type"], logged["entity_id"], logged["lead_id"]) == (
        "leads",
        DEMO_LEAD_ID,
        DEMO_LEAD_ID,
    )


async def test_a_call_for_a_lead_goes_by_its_contacts_phone(
    services: Services, acme: httpx.AsyncClient, sandbox: tuple[str, str]
) -> None:
    body = call_request(lead_id=DEMO_LEAD_ID, direction="inbound")
    del body["phone"]
    call = await created(acme, CALLS, body)
    assert call["phone"] is None

    await run_queued_jobs(services)

    [note] = await call_notes(sandbox[0])
    assert (note["note_type"], note["entity_id"], note["params"]["phone"]) == (
        "call_in",
        DEMO_LEAD_ID,
        DEMO_CONTACT_PHONE,
    )
    logged = (await acme.get(f"{CALLS}/{call['id']}")).json()
    assert (logged["sync_status"], logged["phone"]) == ("synced", DEMO_CONTACT_PHONE)


async def test_a_call_with_a_uniq_logged_before_is_not_logged_again(
    services: Services, acme: httpx.AsyncClient, sandbox: tuple[str, str]
) -> None:
    first = await created(acme, CALLS, call_request(uniq="call-0002"))

    again = await acme.post(CALLS, json=call_request(uniq="call-0002"))

    assert again.status_code == 200, again.text
    assert again.json()["id"] == first["id"]
    await run_queued_jobs(services)
    assert len(await call_notes(sandbox[0])) == 1
    assert await jobs(services) == [("log_crm_call", "succeeded", 1)]


async def test_a_retry_finds_the_call_the_dead_attempt_logged(
    services: Services,
    acme: httpx.AsyncClient,
    kommo: httpx.AsyncClient,
    sandbox: tuple[str, str],
) -> None:
    call = await created(acme, CALLS, call_request(uniq="call-0003"))
    # A worker died after Kommo logged the call and before we noted it.
    await rows(services, "UPDATE crm_calls SET push_attempts = 1 RETURNING id")
    response = await kommo.post("/api/v4/calls", json=[call_request(uniq="call-0003")])
    response.raise_for_status()

    await run_queued_jobs(services)

    [note] = await call_notes(sandbox[0])
    logged = (await acme.get(f"{CALLS}/{call['id']}")).json()
    assert (logged["sync_status"], logged["kommo_id"]) == ("synced", note["id"])
    assert await rows(services, "SELECT push_attempts FROM crm_calls") == [(1,)]


async def test_a_retry_logs_the_call_the_dead_attempt_did_not(
    services: Services, acme: httpx.AsyncClient, sandbox: tuple[str, str]
) -> None:
    call = await created(acme, CALLS, call_request(uniq="call-0004"))
    await rows(services, "UPDATE crm_calls SET push_attempts = 1 RETURNING id")

    await run_queued_jobs(services)

    [note] = await call_notes(sandbox[0])
    assert note["params"]["uniq"] == "call-0004"
    assert (await acme.get(f"{CALLS}/{call['id']}")).json()["sync_status"] == "synced"
    assert await rows(services, "SELECT push_attempts FROM crm_calls") == [(2,)]


async def test_a_call_kommo_cannot_file_fails_with_kommos_words(
    services: Services, acme: httpx.AsyncClient, sandbox: tuple[str, str]
) -> None:
    call = await created(acme, CALLS, call_request(phone="+1 212 555 0199"))

    await run_queued_jobs(services)

    failed = (await acme.get(f"{CALLS}/{call['id']}")).json()
    assert (failed["sync_status"], failed["sync_error"]) == (
        "failed",
        "No contact or company has this phone number",
    )
    assert await jobs(services) == [("log_crm_call", "failed", 1)]
    assert await call_notes(sandbox[0]) == []
