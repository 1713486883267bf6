"""API keys: created with scopes (the key shown once), listed without secrets, revoked — and a
revoked key is refused by the REST API."""

from __future__ import annotations

import uuid

import httpx
import pytest

from agent_platform.db.session import transaction
from agent_platform.kit.errors import NotFoundError
from agent_platform.organization.api_keys import (
    InvalidApiKeyError,
    create_api_key,
    list_api_keys,
    revoke_api_key,
)
from agent_platform.services import Services
from tests.integration.accounts.conftest import MakeMember


async def test_a_key_works_until_it_is_revoked(
    services: Services, make_member: MakeMember, api_url: str
) -> None:
    ann = await make_member()
    async with transaction(services.sessions) as session:
        created = await create_api_key(
            session,
            organization_id=ann.organization_id,
            name=" CRM sync ",
            scopes=["write", "read", "read"],
            created_by=ann.user_id,
        )
    assert created.plaintext.startswith(f"ap_{created.summary.prefix}_")
    assert created.summary.name == "CRM sync"
    assert created.summary.scopes == ("read", "write")
    assert created.summary.last_used_at is None
    headers = {"Authorization": f"Bearer {created.plaintext}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers) as client:
        assert (await client.get("/api/v1/agents")).status_code == 200
        async with transaction(services.sessions) as session:
            [listed] = await list_api_keys(session, ann.organization_id)
        assert listed.id == created.summary.id
        assert listed.last_used_at is not None
        assert created.plaintext not in repr(listed)

        async with transaction(services.sessions) as session:
            revoked = await revoke_api_key(session, ann.organization_id, created.summary.id)
        assert revoked.revoked_at is not None
        refused = await client.get("/api/v1/agents")
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    async with transaction(services.sessions) as session:
        again = await revoke_api_key(session, ann.organization_id, created.summary.id)
    assert again.revoked_at == revoked.revoked_at


async def test_scopes_and_names_are_checked(services: Services, make_member: MakeMember) -> None:
    ann = await make_member()
    for name, scopes in (("ok", ["admin"]), ("ok", []), ("", ["read"]), ("x" * 201, ["read"])):
        with pytest.raises(InvalidApiKeyError):
            async with transaction(services.sessions) as session:
                await create_api_key(
                    session,
                    organization_id=ann.organization_id,
                    name=name,
                    scopes=scopes,
                    created_by=None,
                )


async def test_another_organization_cannot_revoke_or_list_a_key(
    services: Services, make_member: MakeMember
) -> None:
    ann, eve = await make_member(), await make_member()
    async with transaction(services.sessions) as session:
        created = await create_api_key(
            session, organization_id=ann.organization_id, name="k", scopes=["read"], created_by=None
        )
        assert await list_api_keys(session, eve.organization_id) == []
    for organization_id, key_id in (
        (eve.organization_id, created.summary.id),
        (ann.organization_id, uuid.uuid4()),
    ):
        with pytest.raises(NotFoundError):
            async with transaction(services.sessions) as session:
                await revoke_api_key(session, organization_id, key_id)


async def test_a_read_only_key_reads_but_may_not_change_anything(
    services: Services, make_member: MakeMember, api_url: str
) -> None:
    ann = await make_member()
    async with transaction(services.sessions) as session:
        reader = await create_api_key(
            session,
            organization_id=ann.organization_id,
            name="Reporting",
            scopes=["read"],
            created_by=ann.user_id,
        )
    headers = {"Authorization": f"Bearer {reader.plaintext}"}
    async with httpx.AsyncClient(base_url=api_url, headers=headers) as client:
        listed = await client.get("/api/v1/agents")
        refused = await client.post("/api/v1/agents", json={"name": "Sneaky", "model": "m"})
        after = await client.get("/api/v1/agents")

    assert listed.status_code == 200
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "insufficient_scope"
    assert after.json() == listed.json(), "the refused request created nothing"
