"""The visual rule editor in chromium: a trigger built by clicking (a condition on lead.price
and a tag action), refused with the error next to its node, tried on a sample event, saved."""

from __future__ import annotations

import re

from playwright.async_api import BrowserContext, Page, expect
from sqlalchemy import select

from agent_platform.automation.models import Trigger
from agent_platform.db.session import transaction
from agent_platform.services import Services
from tests.browser.conftest import SCREENSHOTS
from tests.browser.test_sign_in import COLLECT_VIOLATIONS, sign_in
from tests.support.people import create_person


async def test_a_trigger_is_built_tested_and_saved_in_the_visual_editor(
    page: Page, context: BrowserContext, api_url: str, services: Services
) -> None:
    person = await create_person(services)
    await page.add_init_script(COLLECT_VIOLATIONS)
    await page.goto("/app/automation/triggers/new")
    await sign_in(page, person)
    await page.wait_for_url("**/app/automation/triggers/new")

    await page.get_by_label("Name", exact=True).fill("Big deals")
    await page.get_by_label("When", exact=True).select_option("lead_status_changed")
    await page.get_by_test_id("add-condition").click()
    condition = page.get_by_test_id("condition")
    await condition.get_by_test_id("condition-field").select_option("lead.price")
    await condition.get_by_test_id("condition-operator").select_option("gt")
    await page.get_by_test_id("add-action").click()
    action = page.get_by_test_id("action")
    await action.get_by_test_id("action-type").select_option("add_tag")
    await action.get_by_test_id("action-tag").fill("hot")

    # Saved without a value: the page comes back with the error beside the condition.
    await page.get_by_test_id("save").click()
    await expect(page.get_by_test_id("editor-error-path")).to_have_text("conditions.all[0].value")
    await expect(condition.get_by_test_id("node-error")).to_contain_text(
        "value for lead.price is required"
    )

    await condition.get_by_test_id("condition-value").fill("1000")
    await page.locator("input[name='sample_lead_name']").fill("Acme deal")
    await page.locator("input[name='sample_lead_price']").fill("1500")
    await page.locator("input[name='sample_lead_tags']").fill("vip")
    await page.get_by_test_id("run-test").click()

    await expect(page.get_by_test_id("dry-run-verdict")).to_have_text(
        "Matched: the trigger would fire."
    )
    await expect(page.get_by_test_id("trace-seen")).to_have_text("1500")
    await expect(page.get_by_test_id("would-perform")).to_contain_text('"hot"')

    await page.locator("input[name='sample_lead_price']").fill("800")
    await page.get_by_test_id("run-test").click()
    await expect(page.get_by_test_id("dry-run-verdict")).to_have_text(
        "Not matched: the trigger would not fire."
    )

    await page.get_by_test_id("save").click()
    await page.wait_for_url(re.compile(r"/app/automation/triggers/[0-9a-f-]{36}\?saved=1$"))
    await expect(page.get_by_test_id("saved")).to_be_visible()
    async with transaction(services.sessions) as session:
        [trigger] = list(
            await session.scalars(
                select(Trigger).where(Trigger.organization_id == person.organization_id)
            )
        )
    assert trigger.name == "Big deals"
    assert trigger.conditions == {"all": [{"field": "lead.price", "operator": "gt", "value": 1000}]}
    assert trigger.actions == [{"type": "add_tag", "tag": "hot"}]
    # The saved trigger is drawn again from its JSON.
    await expect(page.get_by_test_id("condition-value")).to_have_value("1000")
    await expect(page.get_by_test_id("action-tag")).to_have_value("hot")
    await page.locator("input[name='sample_lead_price']").fill("1500")
    await page.get_by_test_id("run-test").click()
    await expect(page.get_by_test_id("dry-run-verdict")).to_have_text(
        "Matched: the trigger would fire."
    )
    await page.screenshot(path=SCREENSHOTS / "rule-editor.png", full_page=True)
    assert await page.evaluate("window.cspViolations") == []

    await page.get_by_role("button", name="Русский").click()
    await expect(page.get_by_test_id("save")).to_have_text("Сохранить триггер")
    await page.screenshot(path=SCREENSHOTS / "rule-editor-ru.png", full_page=True)
