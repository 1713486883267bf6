"""The whole way in chromium: the admin connects the Kommo sandbox from the dashboard, a
customer writes on the sandbox's lead page, the agent answers (a real worker, the fake LLM),
and the admin reads the exchange in Conversations and takes it over."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect
from sqlalchemy import select

from agent_platform.config import Settings
from agent_platform.conversation.models import Message
from agent_platform.crm.models import CrmConnection
from agent_platform.crm.sandbox.store import DEMO_LEAD_ID
from agent_platform.db.session import transaction
from agent_platform.services import Services
from tests.conftest import make_settings
from tests.support.agents import answer_with, api_key_of, created, published
from tests.support.people import create_person
from tests.support.processes import eventually_awaited
from tests.support.worker import running_worker

LLM_REPLY = "Our prices start at 100 USD."  # what the conftest's fake LLM answers


@pytest.fixture
def settings(
    tmp_path: Path, clean_database: str, fake_llm_url: str, sandbox: tuple[str, str]
) -> Settings:
    return make_settings(
        clean_database, tmp_path / "data", fake_llm_url, kommo_sandbox_url=sandbox[0]
    )


@pytest.fixture
async def worker(services: Services) -> AsyncIterator[None]:
    async with running_worker(services):
        yield


async def the_connection(services: Services) -> CrmConnection | None:
    async with transaction(services.sessions) as session:
        found: CrmConnection | None = await session.scalar(select(CrmConnection))
        return found


async def the_reply(services: Services) -> str | None:
    async with transaction(services.sessions) as session:
        reply = await session.scalar(select(Message.content).where(Message.role == "assistant"))
        return None if reply is None else str(reply)


@pytest.mark.usefixtures("worker")
async def test_a_customer_writes_in_kommo_and_the_admin_reads_the_answer_in_the_dashboard(
    page: Page, services: Services, sandbox: tuple[str, str], api_url: str
) -> None:
    sandbox_url, sandbox_token = sandbox
    person = await create_person(services)
    await page.goto("/app/integrations")
    await page.get_by_label("Email").fill(person.email)
    await page.get_by_label("Password").fill(person.password)
    await page.get_by_role("button", name="Sign in").click()
    sandbox_form = page.get_by_test_id("sandbox-form")
    await sandbox_form.get_by_label("Sandbox access token").fill(sandbox_token)
    await sandbox_form.get_by_role("button", name="Connect the sandbox").click()
    await expect(page.get_by_test_id("connection-status")).to_have_text("Active")

    connection = await eventually_awaited(lambda: the_connection(services), "the connection")
    headers = await api_key_of(services, person.organization_id)
    async with httpx.AsyncClient(base_url=api_url) as api:
        agent = await created(api, headers, name="Sales", instructions="Sell politely.")
        await published(api, headers, agent["id"], 1)
    await answer_with(services, connection.id, agent["id"])
    # Kommo sends its webhooks to the platform's address (the test's server, not the
    # PUBLIC_BASE_URL the connection subscribed).
    async with httpx.AsyncClient(
        base_url=sandbox_url, headers={"Authorization": f"Bearer {sandbox_token}"}
    ) as kommo:
        subscribed = await kommo.post(
            "/api/v4/webhooks",
            json={
                "destination": f"{api_url}/webhooks/kommo/{connection.webhook_token}",
                "settings": ["add_message"],
            },
        )
        assert subscribed.status_code == 200, subscribed.text

    customer = await page.context.new_page()
    await customer.goto(f"{sandbox_url}/sandbox/leads/{DEMO_LEAD_ID}")
    await customer.get_by_label("Message").fill("Hello! How much is the corner sofa?")
    await customer.get_by_role("button", name="Send").click()
    reply = await eventually_awaited(lambda: the_reply(services), "the agent's reply")
    assert reply == LLM_REPLY

    await page.goto("/app/conversations")
    await page.get_by_role("link", name=f"Lead #{DEMO_LEAD_ID}").click()
    await page.wait_for_url(re.compile(r"/app/conversations/[0-9a-f-]+$"))
    messages = page.get_by_test_id("message-text")
    await expect(messages.first).to_have_text("Hello! How much is the corner sofa?")
    await expect(messages.last).to_have_text(LLM_REPLY)

    await page.get_by_role("button", name="Take over").click()
    await expect(page.get_by_test_id("conversation-state")).to_have_text("Paused")
