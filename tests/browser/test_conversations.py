"""Conversations in chromium: open one, take it over from the agent, give it back, and
find both in the activity log."""

from __future__ import annotations

import re

from playwright.async_api import Page, expect

from agent_platform.services import Services
from tests.browser.conftest import SCREENSHOTS
from tests.browser.test_sign_in import sign_in
from tests.integration.web.test_conversations import LEAD_ID, seed_conversations


async def test_taking_over_a_conversation_and_resuming_it(page: Page, services: Services) -> None:
    seeded = await seed_conversations(services)
    await page.goto("/app/conversations")
    await sign_in(page, seeded.person)
    await page.wait_for_url("**/app/conversations")
    await expect(page.get_by_test_id("conversation-row")).to_have_count(4)
    await page.screenshot(path=SCREENSHOTS / "conversations.png", full_page=True)

    await page.get_by_role("link", name=f"Lead #{LEAD_ID}").click()

    await page.wait_for_url(re.compile(rf"/app/conversations/{seeded.with_messages}$"))
    state = page.get_by_test_id("conversation-state")
    await expect(state).to_have_text("Answering")
    await expect(page.get_by_test_id("message")).to_have_count(4)
    await expect(page.get_by_test_id("message-text").first).to_have_text(
        "Hello <script>alert('lead')</script>, how much is it?"
    )
    await expect(page.get_by_test_id("tool-call")).to_contain_text("move_lead_to_stage")
    await page.screenshot(path=SCREENSHOTS / "conversation.png", full_page=True)

    await page.get_by_role("button", name="Take over").click()

    await expect(state).to_have_text("Paused")
    await expect(page.get_by_test_id("handoff-reason")).to_have_text("taken over in the dashboard")
    await expect(page.get_by_role("button", name="Take over")).to_have_count(0)

    await page.get_by_role("button", name="Resume the agent").click()

    await expect(state).to_have_text("Answering")
    await expect(page.get_by_role("button", name="Take over")).to_be_visible()

    await page.goto("/app/logs")

    await expect(page.get_by_test_id("record")).to_have_count(2)
    await expect(page.get_by_test_id("activity")).to_contain_text("conversation.resumed")
    await page.screenshot(path=SCREENSHOTS / "logs.png", full_page=True)
