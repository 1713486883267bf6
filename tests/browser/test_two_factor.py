"""The one-time-code step after the password, and its set-up where the organization demands it."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pyotp
from playwright.async_api import Page, expect

from agent_platform.services import Services
from tests.browser.test_sign_in import sign_in
from tests.support.people import create_person


def a_wrong_code(secret: str) -> str:
    """A code that matches none of the steps the server accepts around now."""
    totp = pyotp.TOTP(secret)
    step = totp.timecode(datetime.now(UTC))
    accepted = {totp.generate_otp(step + offset) for offset in (-1, 0, 1, 2)}
    return next(code for code in ("000000", "111111", "222222", "333333") if code not in accepted)


async def test_a_user_with_two_factor_gives_the_code_before_the_overview(
    page: Page, services: Services
) -> None:
    secret = pyotp.random_base32()
    person = await create_person(services, totp_secret=secret)
    await page.goto("/app")
    await sign_in(page, person)
    await page.wait_for_url(re.compile(r"/login/two-factor\?next=%2Fapp$"))

    await page.goto("/app")
    await expect(page).to_have_url(re.compile(r"/login/two-factor$"))
    await page.get_by_label("Code").fill(a_wrong_code(secret))
    await page.get_by_role("button", name="Confirm").click()
    await expect(page.get_by_test_id("form-error")).to_contain_text("The code is wrong")

    await page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    await page.get_by_role("button", name="Confirm").click()

    await page.wait_for_url("**/app")
    await expect(page.get_by_test_id("organization-name")).to_have_text("Acme Sales")


async def test_an_admin_sets_two_factor_up_when_the_organization_requires_it(
    page: Page, services: Services
) -> None:
    person = await create_person(services, require_two_factor_for_admins=True)
    await page.goto("/login")
    await sign_in(page, person)
    await page.wait_for_url(re.compile(r"/login/two-factor"))
    await expect(page.locator(".qr-code svg")).to_be_visible()
    secret = await page.get_by_test_id("totp-secret").inner_text()

    await page.get_by_label("Code").fill(pyotp.TOTP(secret).now())
    await page.get_by_role("button", name="Confirm").click()

    await page.wait_for_url("**/app")
    await expect(page.get_by_test_id("role")).to_have_text("Administrator")
