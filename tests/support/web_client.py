"""The dashboard over plain HTTP in tests: signed in as a person, with the forms' CSRF token."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from tests.support.people import Person

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


def form_token(page: httpx.Response) -> str:
    """The CSRF token a page's forms carry."""
    found = CSRF_FIELD.search(page.text)
    assert found, "the page has no CSRF field"
    return found.group(1)


@asynccontextmanager
async def signed_in(api_url: str, person: Person) -> AsyncIterator[httpx.AsyncClient]:
    """A client signed in through the login form (its session cookie kept)."""
    async with httpx.AsyncClient(base_url=api_url) as client:
        token = form_token(await client.get("/login"))
        answer = await client.post(
            "/login",
            data={"email": person.email, "password": person.password, "csrf_token": token},
        )
        assert answer.status_code == 303, answer.text
        assert answer.headers["location"] == "/app"
        yield client
