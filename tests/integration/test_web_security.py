"""The dashboard's defences over real HTTP: CSRF, escaping, security headers, CORS."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from agent_platform.app import create_app
from agent_platform.config import Settings
from agent_platform.services import Services
from agent_platform.web.security import CONTENT_SECURITY_POLICY, HSTS
from tests.support.people import create_person
from tests.support.servers import serve_app
from tests.support.web_client import form_token, signed_in

ALLOWED_ORIGIN = "https://crm.example.com"


async def test_a_form_without_its_csrf_token_is_refused(api_url: str, services: Services) -> None:
    person = await create_person(services)
    async with signed_in(api_url, person) as client:
        session_token = form_token(await client.get("/app"))

        missing = await client.post("/logout")
        wrong = await client.post("/logout", data={"csrf_token": "x" * 43})
        from_another_page = await client.post("/logout", headers={"X-CSRF-Token": "forged"})

        for refused in (missing, wrong, from_another_page):
            assert refused.status_code == 403
            assert "The form has expired" in refused.text
        assert (await client.get("/app")).status_code == 200, "a refused form changed nothing"
        by_htmx = await client.post("/logout", headers={"X-CSRF-Token": session_token})
        assert by_htmx.status_code == 303
        assert (await client.get("/app")).headers["location"] == "/login?next=%2Fapp"


async def test_the_login_form_needs_its_own_browser_s_token(
    api_url: str, services: Services
) -> None:
    person = await create_person(services)
    credentials = {"email": person.email, "password": person.password}
    async with (
        httpx.AsyncClient(base_url=api_url) as victim,
        httpx.AsyncClient(base_url=api_url) as attacker,
    ):
        attackers_token = form_token(await attacker.get("/login"))
        await victim.get("/login")

        assert (await victim.post("/login", data=credentials)).status_code == 403
        forged = await victim.post("/login", data=credentials | {"csrf_token": attackers_token})
        assert forged.status_code == 403
        assert "ap_session" not in victim.cookies


async def test_an_organization_name_with_markup_is_shown_as_text(
    api_url: str, services: Services
) -> None:
    person = await create_person(services, organization_name="<script>alert(1)</script>")
    async with signed_in(api_url, person) as client:
        page = await client.get("/app")

    assert page.status_code == 200
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "<script>alert" not in page.text


async def test_after_login_only_a_path_on_this_site_is_followed(
    api_url: str, services: Services
) -> None:
    person = await create_person(services)
    async with httpx.AsyncClient(base_url=api_url) as client:
        token = form_token(await client.get("/login", params={"next": "//evil.example.com/x"}))
        answer = await client.post(
            "/login",
            data={
                "email": person.email,
                "password": person.password,
                "csrf_token": token,
                "next": "/\t/evil.example.com",
            },
        )
    assert answer.status_code == 303
    assert answer.headers["location"] == "/app"


@pytest.mark.parametrize("path", ["/login", "/api/health/live", "/static/css/app.css"])
def test_pages_api_and_files_carry_the_security_headers(api_url: str, path: str) -> None:
    plain = httpx.get(f"{api_url}{path}")
    # uvicorn trusts X-Forwarded-Proto from 127.0.0.1, as it would from a local proxy.
    behind_tls_proxy = httpx.get(f"{api_url}{path}", headers={"X-Forwarded-Proto": "https"})

    for answer in (plain, behind_tls_proxy):
        assert answer.status_code == 200
        assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "same-origin"
        assert answer.headers["x-content-type-options"] == "nosniff"
    assert "strict-transport-security" not in plain.headers
    assert behind_tls_proxy.headers["strict-transport-security"] == HSTS


def test_the_session_cookie_is_http_only_and_secure_over_https(api_url: str) -> None:
    page = httpx.get(f"{api_url}/login", headers={"X-Forwarded-Proto": "https"})
    pre_session_cookie = page.headers["set-cookie"].lower()
    assert "httponly" in pre_session_cookie
    assert "secure" in pre_session_cookie
    assert "samesite=lax" in pre_session_cookie


@pytest.fixture
def cors_api_url(settings: Settings) -> Iterator[str]:
    assert settings.database_url
    allowing = settings.model_copy(update={"cors_allowed_origins": (ALLOWED_ORIGIN,)})
    with serve_app(create_app(allowing, settings.database_url)) as url:
        yield url


def test_the_api_answers_cross_origin_only_to_allowed_origins(cors_api_url: str) -> None:
    allowed = httpx.get(f"{cors_api_url}/api/health/live", headers={"Origin": ALLOWED_ORIGIN})
    other = httpx.get(
        f"{cors_api_url}/api/health/live", headers={"Origin": "https://evil.example.com"}
    )
    preflight = httpx.options(
        f"{cors_api_url}/api/v1/agents",
        headers={
            "Origin": ALLOWED_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    refused_preflight = httpx.options(
        f"{cors_api_url}/api/v1/agents",
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "POST"},
    )
    page = httpx.get(f"{cors_api_url}/login", headers={"Origin": ALLOWED_ORIGIN})

    assert allowed.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "access-control-allow-credentials" not in allowed.headers
    assert "access-control-allow-origin" not in other.headers
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "access-control-allow-origin" not in refused_preflight.headers
    assert "access-control-allow-origin" not in page.headers, "pages are same-origin only"


def test_no_origin_is_allowed_unless_configured(api_url: str) -> None:
    answer = httpx.get(f"{api_url}/api/health/live", headers={"Origin": ALLOWED_ORIGIN})
    assert "access-control-allow-origin" not in answer.headers


def test_a_malformed_origin_setting_is_refused(settings: Settings) -> None:
    with pytest.raises(ValueError, match="not an origin"):
        Settings(cors_allowed_origins=("https://crm.example.com/",))
