"""The agents pages in chromium: create an agent, edit it, try it in the playground and watch
the reply stream in, all under the Content-Security-Policy; screenshots of the pages."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from agent_platform.services import Services
from tests.browser.conftest import SCREENSHOTS
from tests.browser.test_sign_in import COLLECT_VIOLATIONS, sign_in
from tests.support.people import create_person

FAKE_REPLY = "Our prices start at 100 USD."


async def test_creating_editing_and_trying_an_agent_in_the_playground(
    page: Page, services: Services
) -> None:
    person = await create_person(services)
    await page.add_init_script(COLLECT_VIOLATIONS)
    await page.goto("/login?next=/app/agents")
    await sign_in(page, person)
    await page.wait_for_url("**/app/agents")

    await page.get_by_label("Name").fill("Night seller")
    await page.get_by_label("Instructions").fill("Answer questions about prices, kindly.")
    await page.get_by_label("Model").fill("test/model")
    await page.get_by_role("button", name="Create").click()

    await page.wait_for_url(re.compile(r"/app/agents/[0-9a-f-]{36}\?notice=created$"))
    await expect(page.get_by_test_id("agent-name")).to_have_text("Night seller")
    await expect(page.get_by_test_id("agent-status")).to_have_text("Draft")

    await page.get_by_label("Instructions").fill("Answer questions about prices and delivery.")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_test_id("notice")).to_contain_text("Saved as a new version")
    await expect(page.get_by_test_id("version-2")).to_be_visible()

    await page.get_by_test_id("version-2").get_by_role("button", name="Publish").click()
    await expect(page.get_by_test_id("agent-published")).to_have_text("Version 2 answers customers")
    await expect(page.get_by_test_id("agent-status")).to_have_text("Active")

    await page.get_by_label("Message as a customer").fill("How much does it cost?")
    await page.get_by_role("button", name="Send").click()
    reply = page.get_by_test_id("playground-reply")
    await expect(reply).to_have_attribute("data-done", "true")
    await expect(reply).to_contain_text(FAKE_REPLY)
    await expect(page.get_by_test_id("playground-log")).to_contain_text("How much does it cost?")
    await page.screenshot(path=SCREENSHOTS / "agent-edit.png", full_page=True)

    await page.get_by_role("link", name="Advanced").click()
    await page.get_by_label("Wait for more messages, seconds (0–300)").fill("999")
    await page.get_by_role("button", name="Save").click()
    await expect(page.get_by_test_id("error-debounce_seconds")).to_be_visible()
    await page.screenshot(path=SCREENSHOTS / "agent-advanced.png", full_page=True)

    await page.goto("/app/agents")
    await expect(page.get_by_test_id("agent-row")).to_contain_text("Night seller")
    await page.screenshot(path=SCREENSHOTS / "agents.png", full_page=True)
    assert await page.evaluate("window.cspViolations") == []

    await page.get_by_role("button", name="Русский").click()
    await expect(page.get_by_role("heading", name="Агенты")).to_be_visible()
    await page.screenshot(path=SCREENSHOTS / "agents-ru.png", full_page=True)
