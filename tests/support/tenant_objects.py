"""One object of every kind an organization owns, made through the REST API as an integrator
makes them, so that tests can point every endpoint at a real object of a known owner."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import httpx

from agent_platform.crm.sandbox.store import DEMO_CONTACT_PHONE, DEMO_LEAD_ID
from tests.support.crm_records import due_in

RULE_CONDITIONS = {"field": "lead.price", "operator": "gte", "value": 1000}
SEND_MESSAGE = {"type": "send_message", "text": "Hello, {{ lead.name }}!"}


@dataclass(frozen=True)
class TenantObjects:
    """An organization's objects. `ids` is keyed by the path parameter that names an object of
    that kind in the API (`agent_id`, `rule_id`, …; `number` is an agent version's number);
    `lead_id` is the Kommo lead the objects are about (a lead is Kommo's, not the platform's)."""

    ids: dict[str, str]
    lead_id: int


async def _made(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code in (200, 201), f"{response.request.url}: {response.text}"
    made: dict[str, Any] = response.json()
    return made


async def create_tenant_objects(api: httpx.AsyncClient, connection_id: uuid.UUID) -> TenantObjects:
    """One object of every kind for the organization whose API key `api` carries; its Kommo
    connection `connection_id` points at the sandbox."""
    agent = await _made(
        await api.post(
            "/api/v1/agents",
            json={"name": "Seller", "instructions": "Sell kindly.", "model": "test/model"},
        )
    )
    await _made(await api.post(f"/api/v1/agents/{agent['id']}/publish", json={"version": 1}))
    chat = await _made(
        await api.post("/api/v1/chat", json={"agent_id": agent["id"], "message": "How much?"})
    )
    document = await _made(
        await api.post(
            "/api/v1/knowledge/documents",
            json={"title": "Prices", "kind": "markdown", "content": "# Sofa\n\n900 USD."},
        )
    )
    faq = await _made(
        await api.post("/api/v1/knowledge/faqs", json={"question": "Sofa?", "answer": "Yes."})
    )
    task = await _made(
        await api.post(
            "/api/v1/crm/tasks",
            json={
                "lead_id": DEMO_LEAD_ID,
                "text": "Call the customer back",
                "complete_till": due_in(24).isoformat(),
            },
        )
    )
    call = await _made(
        await api.post(
            "/api/v1/crm/calls",
            json={
                "phone": DEMO_CONTACT_PHONE,
                "direction": "outbound",
                "duration": 95,
                "source": "telephony",
            },
        )
    )
    rule = await _made(
        await api.post("/api/v1/rules", json={"name": "Hot", "conditions": RULE_CONDITIONS})
    )
    run = await _made(
        await api.post(
            f"/api/v1/rules/{rule['id']}/dry-run",
            json={"event": {"lead": {"id": DEMO_LEAD_ID, "price": 5000}}},
        )
    )
    trigger = await _made(
        await api.post(
            "/api/v1/triggers",
            json={
                "name": "Hot lead moved",
                "event": {"type": "lead_status_changed"},
                "conditions": {"all": [RULE_CONDITIONS]},
                "actions": [SEND_MESSAGE],
            },
        )
    )
    sequence = await _made(
        await api.post(
            "/api/v1/sequences",
            json={
                "name": "Warm-up",
                "steps": [
                    {
                        "name": "first touch",
                        "delay": {"after_minutes": 60},
                        "conditions": None,
                        "actions": [SEND_MESSAGE],
                    }
                ],
                "stop_on": {"lead_replied": True},
            },
        )
    )
    enrollment = await _made(
        await api.post(
            f"/api/v1/sequences/{sequence['id']}/enrollments",
            json={"connection_id": str(connection_id), "lead_id": DEMO_LEAD_ID},
        )
    )
    return TenantObjects(
        ids={
            "agent_id": agent["id"],
            "number": "1",
            "conversation_id": chat["conversation_id"],
            "connection_id": str(connection_id),
            "document_id": document["id"],
            "faq_id": faq["id"],
            "task_id": task["id"],
            "call_id": call["id"],
            "rule_id": rule["id"],
            "run_id": run["run_id"],
            "trigger_id": trigger["id"],
            "sequence_id": sequence["id"],
            "enrollment_id": enrollment["id"],
        },
        lead_id=DEMO_LEAD_ID,
    )
