"""The integrations and operations pages over HTTP: connecting Kommo (the sandbox through the
long-lived token form), refusals that write nothing, the re-authorisation banner, tenant
scoping and permissions, and the operations page's figures and recent errors."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, text, update

from agent_platform.config import Settings
from agent_platform.crm.models import ConnectionStatus, CrmConnection, InboxEvent, InboxStatus
from agent_platform.db.session import transaction
from agent_platform.organization.models import Role
from agent_platform.services import Services
from tests.conftest import make_settings
from tests.support.factories import ConnectedAgent
from tests.support.kommo_oauth import consent, oauth_overrides, register_integration
from tests.support.people import Person, create_person
from tests.support.web_client import form_token, signed_in


@pytest.fixture
def settings(
    tmp_path: Path, clean_database: str, fake_llm_url: str, sandbox: tuple[str, str]
) -> Settings:
    # The platform trusts this test's sandbox as a Kommo account (the page offers to connect
    # it) and knows it as Kommo's OAuth consent page.
    return make_settings(
        clean_database, tmp_path / "data", fake_llm_url, **oauth_overrides(sandbox[0])
    )


async def connection_count(services: Services, organization_id: uuid.UUID) -> int:
    async with transaction(services.sessions) as session:
        found = await session.scalar(
            select(func.count())
            .select_from(CrmConnection)
            .where(CrmConnection.organization_id == organization_id)
        )
    return int(found or 0)


async def connection_of(services: Services, organization_id: uuid.UUID) -> CrmConnection:
    async with transaction(services.sessions) as session:
        return (
            await session.scalars(
                select(CrmConnection).where(CrmConnection.organization_id == organization_id)
            )
        ).one()


async def person_with_connection(
    services: Services, sandbox: tuple[str, str], *, role: Role = Role.ADMIN
) -> tuple[Person, uuid.UUID]:
    """A person whose organization has a connection (and an agent answering it)."""
    person = await create_person(services, role=role)
    async with transaction(services.sessions) as session:
        connection = CrmConnection(
            organization_id=person.organization_id,
            subdomain="acme",
            base_url=sandbox[0],
            access_token_encrypted=services.secrets.encrypt(sandbox[1]),
            webhook_token=uuid.uuid4().hex,
        )
        session.add(connection)
        await session.flush()
        return person, connection.id


async def test_the_sandbox_connected_with_the_token_form_is_active(
    api_url: str, services: Services, sandbox: tuple[str, str]
) -> None:
    person = await create_person(services)
    async with signed_in(api_url, person) as client:
        page = await client.get("/app/integrations")
        assert page.status_code == 200
        assert "No Kommo account is connected yet." in page.text
        assert sandbox[0] in page.text, "the configured sandbox is offered"

        answer = await client.post(
            "/app/integrations/long-lived-token",
            data={
                "domain": sandbox[0],
                "access_token": sandbox[1],
                "csrf_token": form_token(page),
            },
        )
        assert answer.status_code == 303
        assert answer.headers["location"] == "/app/integrations?notice=connected"
        shown = await client.get(answer.headers["location"])

    connection = await connection_of(services, person.organization_id)
    assert connection.status == ConnectionStatus.ACTIVE.value
    assert connection.base_url == sandbox[0]
    assert services.secrets.decrypt(connection.access_token_encrypted or "") == sandbox[1]
    assert "The Kommo account is connected." in shown.text
    assert 'data-testid="connection-status">Active<' in shown.text
    # The subscription job is deferred with the connection and has not run yet.
    assert 'data-testid="webhook-state">Being subscribed<' in shown.text
    assert sandbox[1] not in shown.text, "the token is never shown"


async def test_the_sandbox_form_connects_with_the_token_alone(
    api_url: str, services: Services, sandbox: tuple[str, str]
) -> None:
    person = await create_person(services)
    async with signed_in(api_url, person) as client:
        token = form_token(await client.get("/app/integrations"))
        answer = await client.post(
            "/app/integrations/sandbox", data={"access_token": sandbox[1], "csrf_token": token}
        )
    assert answer.status_code == 303
    assert (await connection_of(services, person.organization_id)).status == "active"


async def test_a_token_kommo_refuses_shows_the_error_and_writes_nothing(
    api_url: str, services: Services, sandbox: tuple[str, str]
) -> None:
    person = await create_person(services)
    async with signed_in(api_url, person) as client:
        token = form_token(await client.get("/app/integrations"))
        refused = await client.post(
            "/app/integrations/long-lived-token",
            data={"domain": sandbox[0], "access_token": "not-the-token-" * 3, "csrf_token": token},
        )
        untrusted = await client.post(
            "/app/integrations/long-lived-token",
            data={"domain": "evil.example.com", "access_token": sandbox[1], "csrf_token": token},
        )
        empty = await client.post(
            "/app/integrations/long-lived-token",
            data={"domain": "", "access_token": "", "csrf_token": token},
        )

    assert refused.status_code == 400
    assert "Kommo did not accept the token." in refused.text
    assert f'value="{sandbox[0]}"' in refused.text, "the domain is kept for a second try"
    assert "not-the-token-" not in refused.text, "the token typed is not sent back"
    assert untrusted.status_code == 400
    assert "This is not the address of a Kommo account" in untrusted.text
    assert empty.status_code == 422
    assert await connection_count(services, person.organization_id) == 0


async def test_the_oauth_button_connects_the_account_kommo_consented_to(
    api_url: str, services: Services, sandbox: tuple[str, str]
) -> None:
    register_integration(sandbox[0])
    person = await create_person(services)
    stranger = await create_person(services)
    async with signed_in(api_url, person) as client:
        page = await client.get("/app/integrations")
        assert 'data-testid="oauth-connect"' in page.text
        start = await client.get("/app/integrations/kommo/authorize")
        assert start.status_code == 303
        # The admin consents at Kommo, which sends the browser back with code, state, referer.
        granted = consent(start.headers["location"])
        async with signed_in(api_url, stranger) as other:
            elsewhere = await other.get("/app/integrations/kommo/callback", params=granted)
        callback = await client.get("/app/integrations/kommo/callback", params=granted)
        declined = await client.get(
            "/app/integrations/kommo/callback",
            params={"state": granted["state"], "error": "access_denied"},
        )

    assert elsewhere.status_code == 400
    assert "This authorization is too old or was not started here." in elsewhere.text
    assert await connection_count(services, stranger.organization_id) == 0
    assert callback.status_code == 303
    assert callback.headers["location"] == "/app/integrations?notice=connected"
    connection = await connection_of(services, person.organization_id)
    assert connection.status == ConnectionStatus.ACTIVE.value
    assert connection.refresh_token_encrypted is not None
    assert declined.status_code == 400
    assert "Kommo did not grant access." in declined.text


async def test_a_connection_kommo_stopped_accepting_shows_the_banner(
    api_url: str, services: Services, sandbox: tuple[str, str]
) -> None:
    person, connection_id = await person_with_connection(services, sandbox)
    async with transaction(services.sessions) as session:
        await session.execute(
            update(CrmConnection)
            .where(CrmConnection.id == connection_id)
            .values(
                status=ConnectionStatus.NEEDS_REAUTH.value, status_reason="Token has been revoked"
            )
        )
    async with signed_in(api_url, person) as client:
        page = await client.get("/app/integrations")
    assert 'data-testid="reauth-banner"' in page.text
    assert "Kommo no longer accepts the tokens of acme" in page.text
    assert "Token has been revoked" in page.text
    assert 'data-testid="reconnect"' in page.text
    assert 'data-testid="connection-status">Needs re-authorisation<' in page.text


async def test_changing_the_reply_channel_and_agent_then_disconnecting(
    api_url: str, services: Services, connected: ConnectedAgent
) -> None:
    person = await create_person(services)
    async with transaction(services.sessions) as session:
        # The connected agent's organization becomes this person's: move the person there.
        await session.execute(
            text("UPDATE memberships SET organization_id = :org WHERE user_id = :user"),
            {"org": connected.organization_id, "user": person.user_id},
        )
    async with signed_in(api_url, person) as client:
        token = form_token(await client.get("/app/integrations"))
        saved = await client.post(
            f"/app/integrations/{connected.connection_id}/settings",
            data={"reply_channel": "salesbot", "agent_id": "", "csrf_token": token},
        )
        incomplete = await client.post(
            f"/app/integrations/{connected.connection_id}/settings",
            data={
                "reply_channel": "chats",
                "agent_id": str(connected.agent_id),
                "csrf_token": token,
            },
        )
        confirm = await client.get(f"/app/integrations/{connected.connection_id}/disconnect")
        disconnected = await client.post(
            f"/app/integrations/{connected.connection_id}/disconnect", data={"csrf_token": token}
        )

    assert saved.status_code == 303
    assert incomplete.status_code == 400
    assert "Replies through the Chats API need" in incomplete.text
    assert confirm.status_code == 200
    assert "Disconnect Acme?" not in confirm.text
    assert "Disconnect sandbox?" in confirm.text
    assert disconnected.status_code == 303
    connection = await connection_of(services, connected.organization_id)
    assert (connection.reply_channel, connection.agent_id) == ("salesbot", None)
    assert connection.status == ConnectionStatus.DISABLED.value
    assert connection.access_token_encrypted is None


async def test_another_organization_s_connection_is_not_found(
    api_url: str, services: Services, sandbox: tuple[str, str]
) -> None:
    _, theirs = await person_with_connection(services, sandbox)
    person = await create_person(services)
    async with signed_in(api_url, person) as client:
        token = form_token(await client.get("/app/integrations"))
        confirm = await client.get(f"/app/integrations/{theirs}/disconnect")
        change = await client.post(
            f"/app/integrations/{theirs}/settings",
            data={"reply_channel": "note", "csrf_token": token},
        )
        disconnect = await client.post(
            f"/app/integrations/{theirs}/disconnect", data={"csrf_token": token}
        )
    assert [confirm.status_code, change.status_code, disconnect.status_code] == [404, 404, 404]
    async with transaction(services.sessions) as session:
        still = await session.get(CrmConnection, theirs)
    assert still is not None
    assert still.status == "active"


async def test_a_member_sees_the_connections_but_cannot_change_them(
    api_url: str, services: Services, sandbox: tuple[str, str]
) -> None:
    person, connection_id = await person_with_connection(services, sandbox, role=Role.MEMBER)
    async with signed_in(api_url, person) as client:
        page = await client.get("/app/integrations")
        token = form_token(page)
        change = await client.post(
            f"/app/integrations/{connection_id}/settings",
            data={"reply_channel": "salesbot", "csrf_token": token},
        )
        connect = await client.post(
            "/app/integrations/sandbox", data={"access_token": sandbox[1], "csrf_token": token}
        )
        confirm = await client.get(f"/app/integrations/{connection_id}/disconnect")
    assert page.status_code == 200
    assert 'data-testid="connection"' in page.text
    assert "token-form" not in page.text
    assert "reply-channel-select" not in page.text
    assert [change.status_code, connect.status_code, confirm.status_code] == [403, 403, 403]
    async with transaction(services.sessions) as session:
        unchanged = await session.get(CrmConnection, connection_id)
    assert unchanged is not None
    assert unchanged.reply_channel == "note"
    assert await connection_count(services, person.organization_id) == 1


async def test_the_operations_page_shows_health_queue_figures_and_recent_errors(
    api_url: str, services: Services, sandbox: tuple[str, str]
) -> None:
    person, connection_id = await person_with_connection(services, sandbox, role=Role.VIEWER)
    other, other_connection = await person_with_connection(services, sandbox)
    async with transaction(services.sessions) as session:
        for organization_id, connection, error in (
            (person.organization_id, connection_id, "Kommo answered 500 on the note"),
            (other.organization_id, other_connection, "another organization's failure"),
        ):
            session.add(
                InboxEvent(
                    organization_id=organization_id,
                    connection_id=connection,
                    source="kommo",
                    dedupe_key=uuid.uuid4().hex,
                    payload={},
                    status=InboxStatus.FAILED.value,
                    error=error,
                )
            )
        await session.execute(
            text(
                "INSERT INTO procrastinate_jobs (queue_name, task_name, args, status, attempts) "
                "VALUES (:queue, 'kommo.subscribe_webhook', CAST(:args AS jsonb), 'failed', 8), "
                "(:queue, 'agent.answer', '{}', 'todo', 0)"
            ),
            {
                "queue": services.settings.job_queue_name,
                "args": f'{{"connection_id": "{connection_id}"}}',
            },
        )
    async with signed_in(api_url, person) as client:
        page = await client.get("/app/operations")
    assert page.status_code == 200
    for check in ("database", "queue", "migrations"):
        assert f'data-testid="check-{check}"' in page.text
    assert 'data-testid="overall-health">OK<' in page.text
    assert 'data-testid="queue-waiting">1<' in page.text
    assert 'data-testid="queue-failed">1<' in page.text
    assert "Kommo answered 500 on the note" in page.text
    assert "kommo.subscribe_webhook" in page.text
    assert "another organization&#39;s failure" not in page.text
    assert "another organization's failure" not in page.text


async def test_pages_need_a_session(api_url: str) -> None:
    async with httpx.AsyncClient(base_url=api_url) as client:
        for path in ("/app/integrations", "/app/operations"):
            answer = await client.get(path)
            assert answer.status_code == 303
            assert answer.headers["location"].startswith("/login?next=")
