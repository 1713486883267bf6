"""The team pages in chromium: an owner invites a colleague, who joins through the link; an API
key is created and shown once."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from playwright.async_api import Browser, Page, expect

from agent_platform.organization.models import Role
from agent_platform.services import Services
from tests.browser.conftest import SCREENSHOTS, VIEWPORT
from tests.browser.test_sign_in import COLLECT_VIOLATIONS, assert_under_the_policy, sign_in
from tests.support.people import create_person

NEW_PASSWORD = "amber-Kettle-41-softly-orbits"


async def test_an_owner_invites_a_colleague_who_joins_through_the_link(
    page: Page, browser: Browser, api_url: str, services: Services
) -> None:
    owner = await create_person(services, role=Role.OWNER, email="ann@example.com")
    await page.add_init_script(COLLECT_VIOLATIONS)
    await page.goto("/login?next=/app/team")
    await sign_in(page, owner)
    await page.wait_for_url("**/app/team")

    await page.get_by_label("Email", exact=True).fill("cy@example.com")
    await page.get_by_label("Role", exact=True).select_option("admin")
    await page.get_by_role("button", name="Create the invitation link").click()

    link = page.get_by_test_id("invitation-link")
    await expect(link).to_contain_text("/invitations/")
    invitation_path = urlsplit(await link.inner_text()).path
    await expect(page.get_by_test_id("invitations")).to_contain_text("cy@example.com")
    await page.screenshot(path=SCREENSHOTS / "team.png", full_page=True)
    await assert_under_the_policy(page, await page.goto("/app/team"))
    await expect(page.get_by_test_id("invitation-link")).to_have_count(0)

    newcomer_context = await browser.new_context(
        base_url=api_url, viewport=VIEWPORT, locale="en-US"
    )
    try:
        newcomer = await newcomer_context.new_page()
        await newcomer.goto(invitation_path)
        await expect(newcomer.get_by_role("heading", name="Join Acme Sales")).to_be_visible()
        await newcomer.get_by_label("Your name").fill("Cy Diaz")
        await newcomer.get_by_label("Choose a password").fill("password1234")
        await newcomer.get_by_label("The password again").fill("password1234")
        await newcomer.get_by_role("button", name="Accept and join").click()
        await expect(newcomer.get_by_test_id("form-error")).to_contain_text("too weak")

        await newcomer.get_by_label("Choose a password").fill(NEW_PASSWORD)
        await newcomer.get_by_label("The password again").fill(NEW_PASSWORD)
        await newcomer.get_by_role("button", name="Accept and join").click()

        await newcomer.wait_for_url(re.compile(r"/app$"))
        await expect(newcomer.get_by_test_id("role")).to_have_text("Administrator")
    finally:
        await newcomer_context.close()
    await page.reload()
    await expect(page.get_by_test_id("members")).to_contain_text("Cy Diaz")
    await expect(page.get_by_test_id("no-invitations")).to_be_visible()

    await page.get_by_role("button", name="Русский").click()
    await expect(page.get_by_role("heading", name="Команда", exact=True)).to_be_visible()
    await expect(page.get_by_test_id("members")).to_contain_text("Администратор")
    await page.screenshot(path=SCREENSHOTS / "team-ru.png", full_page=True)


async def test_an_api_key_is_shown_once(page: Page, services: Services) -> None:
    admin = await create_person(services, role=Role.ADMIN)
    await page.goto("/login?next=/app/api-keys")
    await sign_in(page, admin)
    await page.wait_for_url("**/app/api-keys")

    await page.get_by_label("Name").fill("CRM sync")
    await page.get_by_label("Write").check()
    await page.get_by_role("button", name="Create the key").click()

    await expect(page.get_by_test_id("api-key")).to_have_text(re.compile(r"^ap_\w+_"))
    await expect(page.get_by_test_id("api-key-row")).to_contain_text("CRM sync")
    await page.screenshot(path=SCREENSHOTS / "api-keys.png", full_page=True)
    await page.get_by_role("link", name="Revoke").click()
    await page.get_by_role("button", name="Revoke").click()
    await page.wait_for_url("**/app/api-keys")
    await expect(page.get_by_test_id("api-key")).to_have_count(0)
    await expect(page.get_by_test_id("api-key-row")).to_contain_text("Revoked")
