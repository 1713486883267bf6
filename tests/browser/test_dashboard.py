"""The dashboard in chromium: the figures and charts of an organization's activity, under the
Content-Security-Policy, in English and Russian."""

from __future__ import annotations

from playwright.async_api import Page, expect

from agent_platform.services import Services
from tests.browser.conftest import SCREENSHOTS
from tests.browser.test_sign_in import COLLECT_VIOLATIONS, assert_under_the_policy, sign_in
from tests.integration.web.test_dashboard import moments, seed_activity
from tests.support.people import create_person


async def test_the_dashboard_shows_figures_and_charts_in_both_languages(
    page: Page, services: Services
) -> None:
    person = await create_person(services)
    await seed_activity(services, person.organization_id, moments())
    await page.add_init_script(COLLECT_VIOLATIONS)
    await page.goto("/login")
    await sign_in(page, person)
    await page.wait_for_url("**/app")

    await expect(page.get_by_test_id("conversations-7-days")).to_have_text("3")
    await expect(page.get_by_test_id("first-response")).to_have_text("4 min 0 s")
    await expect(page.get_by_test_id("conversations-chart").locator("rect")).to_have_count(7)
    await expect(page.get_by_test_id("budget-bar")).to_be_visible()
    await assert_under_the_policy(page, await page.goto("/app"))
    await page.screenshot(path=SCREENSHOTS / "dashboard.png", full_page=True)

    await page.get_by_role("button", name="Русский").click()

    await expect(page.get_by_role("heading", name="Медиана первого ответа")).to_be_visible()
    await expect(page.get_by_test_id("first-response")).to_have_text("4 мин 0 с")
    await page.screenshot(path=SCREENSHOTS / "dashboard-ru.png", full_page=True)
