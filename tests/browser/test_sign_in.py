"""Signing in and out in chromium, in English and Russian, under the Content-Security-Policy."""

from __future__ import annotations

import re

from playwright.async_api import BrowserContext, Page, Response, expect
from sqlalchemy import func, select

from agent_platform.db.session import transaction
from agent_platform.organization.models import WebSession
from agent_platform.services import Services
from agent_platform.web.security import CONTENT_SECURITY_POLICY
from tests.browser.conftest import SCREENSHOTS
from tests.support.people import Person, create_person


async def sign_in(page: Page, person: Person, *, password: str | None = None) -> None:
    await page.get_by_label(re.compile("Email|Электронная почта")).fill(person.email)
    await page.get_by_label(re.compile("Password|Пароль")).fill(password or person.password)
    await page.get_by_role("button", name=re.compile("^(Sign in|Войти)$")).click()


async def session_cookie(context: BrowserContext) -> str | None:
    cookies = {cookie["name"]: cookie["value"] for cookie in await context.cookies()}
    return cookies.get("ap_session")


async def web_session_count(services: Services) -> int:
    async with transaction(services.sessions) as session:
        return int(await session.scalar(select(func.count()).select_from(WebSession)) or 0)


async def test_signing_in_lands_on_the_overview(
    page: Page, context: BrowserContext, services: Services
) -> None:
    person = await create_person(services, email="ann@example.com")
    await page.goto("/app")
    await expect(page).to_have_url(re.compile(r"/login\?next=%2Fapp$"))
    await expect(page.get_by_role("heading", name="Sign in to your organization")).to_be_visible()
    await page.screenshot(path=SCREENSHOTS / "login-en.png")

    await sign_in(page, person)

    await page.wait_for_url("**/app")
    await expect(page.get_by_test_id("organization-name")).to_have_text("Acme Sales")
    await expect(page.get_by_test_id("role")).to_have_text("Administrator")
    await expect(page.get_by_role("link", name="REST API documentation")).to_be_visible()
    assert await session_cookie(context)
    await page.screenshot(path=SCREENSHOTS / "app-en.png")


async def test_a_wrong_password_shows_the_error_and_opens_no_session(
    page: Page, context: BrowserContext, services: Services
) -> None:
    person = await create_person(services)
    await page.goto("/login")

    await sign_in(page, person, password="not-the-password-at-all")

    await expect(page.get_by_test_id("form-error")).to_have_text(
        "The email or the password is wrong."
    )
    await expect(page).to_have_url(re.compile(r"/login$"))
    await expect(page.get_by_label("Email")).to_have_value(person.email)
    assert await session_cookie(context) is None
    assert await web_session_count(services) == 0


async def test_logging_out_ends_the_session(
    page: Page, context: BrowserContext, services: Services
) -> None:
    person = await create_person(services)
    await page.goto("/login")
    await sign_in(page, person)
    await page.wait_for_url("**/app")

    await page.get_by_role("button", name="Log out").click()

    await page.wait_for_url("**/login")
    assert await session_cookie(context) is None
    assert await web_session_count(services) == 0
    await page.goto("/app")
    await expect(page).to_have_url(re.compile(r"/login\?next=%2Fapp$"))


async def test_switching_to_russian_translates_the_pages(
    page: Page, context: BrowserContext, services: Services
) -> None:
    person = await create_person(services, email="ann@example.com")
    await page.goto("/login")

    await page.get_by_role("button", name="Русский").click()

    await expect(page.get_by_role("heading", name="Вход в организацию")).to_be_visible()
    await expect(page.locator("html")).to_have_attribute("lang", "ru")
    await page.screenshot(path=SCREENSHOTS / "login-ru.png")
    await sign_in(page, person)
    await page.wait_for_url("**/app")
    await expect(page.get_by_test_id("role")).to_have_text("Администратор")
    await expect(page.get_by_role("button", name="Выйти")).to_be_visible()
    await page.screenshot(path=SCREENSHOTS / "app-ru.png")

    await page.get_by_role("button", name="English").click()

    await expect(page.get_by_test_id("role")).to_have_text("Administrator")
    await expect(page).to_have_url(re.compile(r"/app$"))


# Recorded by the page itself: a script or style the policy refused raises this event.
COLLECT_VIOLATIONS = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""

INLINE_CODE = """() => ({
  inlineScripts: document.querySelectorAll("script:not([src])").length,
  styleAttributes: document.querySelectorAll("[style]").length,
  styleElements: document.querySelectorAll("style").length,
  handlerAttributes: [...document.querySelectorAll("*")].flatMap(
    (element) => [...element.attributes].filter((attribute) => attribute.name.startsWith("on"))
  ).length,
})"""


async def assert_under_the_policy(page: Page, response: Response | None) -> None:
    assert response is not None
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["x-frame-options"] == "DENY"
    # htmx has loaded, so any style it would inject has been tried by now.
    await page.wait_for_function("() => window.htmx !== undefined")
    assert await page.evaluate(INLINE_CODE) == {
        "inlineScripts": 0,
        "styleAttributes": 0,
        "styleElements": 0,
        "handlerAttributes": 0,
    }
    assert await page.evaluate("window.cspViolations") == []


async def test_pages_carry_the_policy_and_no_inline_code(page: Page, services: Services) -> None:
    person = await create_person(services)
    await page.add_init_script(COLLECT_VIOLATIONS)

    await assert_under_the_policy(page, await page.goto("/login"))

    await sign_in(page, person)
    await page.wait_for_url("**/app")
    await assert_under_the_policy(page, await page.goto("/app"))
