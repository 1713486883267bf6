"""Connecting the Kommo sandbox from the integrations page in chromium, and the operations
page; both saved as screenshots for the README (the integrations page in Russian too)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.async_api import Page, expect

from agent_platform.config import Settings
from agent_platform.services import Services
from tests.browser.conftest import SCREENSHOTS
from tests.conftest import make_settings
from tests.support.people import Person, create_person


@pytest.fixture
def settings(
    tmp_path: Path, clean_database: str, fake_llm_url: str, sandbox: tuple[str, str]
) -> Settings:
    return make_settings(
        clean_database, tmp_path / "data", fake_llm_url, kommo_sandbox_url=sandbox[0]
    )


async def sign_in(page: Page, person: Person, next_path: str) -> None:
    await page.goto(next_path)
    await page.get_by_label("Email").fill(person.email)
    await page.get_by_label("Password").fill(person.password)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(re.escape(next_path) + "$"))


async def test_connecting_the_sandbox_shows_it_active(
    page: Page, services: Services, sandbox: tuple[str, str]
) -> None:
    person = await create_person(services)
    await sign_in(page, person, "/app/integrations")
    await expect(page.get_by_test_id("no-connections")).to_be_visible()

    sandbox_form = page.get_by_test_id("sandbox-form")
    await sandbox_form.get_by_label("Sandbox access token").fill("wrong-token-for-sure")
    await sandbox_form.get_by_role("button", name="Connect the sandbox").click()
    await expect(page.get_by_test_id("error")).to_contain_text("Kommo did not accept the token")
    await expect(page.get_by_test_id("connection")).to_have_count(0)

    sandbox_form = page.get_by_test_id("sandbox-form")
    await sandbox_form.get_by_label("Sandbox access token").fill(sandbox[1])
    await sandbox_form.get_by_role("button", name="Connect the sandbox").click()

    await expect(page.get_by_test_id("notice")).to_have_text("The Kommo account is connected.")
    await expect(page.get_by_test_id("connection")).to_have_count(1)
    await expect(page.get_by_test_id("connection-status")).to_have_text("Active")
    await expect(page.get_by_test_id("webhook-state")).to_have_text("Being subscribed")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / "integrations.png"), full_page=True)

    await page.goto("/app/operations")
    await expect(page.get_by_test_id("overall-health")).to_have_text("OK")
    await expect(page.get_by_test_id("check-database")).to_contain_text("Database")
    # The connection's webhook subscription job waits in the queue (no worker runs here).
    await expect(page.get_by_test_id("queue-waiting")).to_have_text("1")
    await page.screenshot(path=str(SCREENSHOTS / "operations.png"), full_page=True)

    await page.goto("/app/integrations")
    await page.get_by_role("button", name="Русский").click()
    await expect(page.get_by_test_id("connection-status")).to_have_text("Активно")
    await page.screenshot(path=str(SCREENSHOTS / "integrations-ru.png"), full_page=True)
