"""A minimal async client for Kommo API v4: only the calls the platform makes.

It owns no connection pool: the caller passes the shared `httpx.AsyncClient`, so timeouts,
limits and connection reuse are decided once for the whole process. Every failure leaves as a
`KommoError` subclass; the access token never appears in an exception, a repr or a log line.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from agent_platform.crm.kommo.errors import (
    KommoAuthError,
    KommoError,
    KommoNotFound,
    KommoRateLimited,
    KommoUnavailable,
    KommoValidationError,
)

EntityType = Literal["leads", "contacts"]


@dataclass(frozen=True, slots=True)
class KommoNote:
    id: int
    entity_id: int
    note_type: str
    # Only text notes (common, service messages) carry `params.text`; calls and the like do not.
    text: str | None
    created_at: int  # unix seconds, as Kommo sends it


class KommoClient:
    def __init__(self, base_url: str, access_token: str, http: httpx.AsyncClient) -> None:
        self._base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {access_token}"}
        self._http = http

    def __repr__(self) -> str:
        return f"KommoClient({self._base_url!r})"

    async def add_note(self, entity_type: EntityType, entity_id: int, text: str) -> int:
        """Add a common note to a lead or contact and return the new note's id."""
        body = [{"entity_id": entity_id, "note_type": "common", "params": {"text": text}}]
        response = await self._send("POST", f"/api/v4/{entity_type}/notes", json=body)
        with _expecting_kommo_shape(response):
            return int(response.json()["_embedded"]["notes"][0]["id"])

    async def list_notes(
        self, entity_type: EntityType, entity_id: int, *, limit: int = 50
    ) -> list[KommoNote]:
        """The entity's newest notes first."""
        response = await self._send(
            "GET",
            f"/api/v4/{entity_type}/{entity_id}/notes",
            params={"limit": limit, "order[id]": "desc"},
        )
        if response.status_code == httpx.codes.NO_CONTENT:  # Kommo's way of saying "none"
            return []
        with _expecting_kommo_shape(response):
            return [_note_from_api(raw) for raw in response.json()["_embedded"]["notes"]]

    async def get_lead(self, lead_id: int) -> dict[str, Any]:
        response = await self._send("GET", f"/api/v4/leads/{lead_id}")
        # Kommo answers a lead id it does not know with 204, not 404.
        if response.status_code == httpx.codes.NO_CONTENT:
            raise KommoNotFound(response.status_code, f"lead {lead_id} not found")
        with _expecting_kommo_shape(response):
            lead = response.json()
            if not isinstance(lead, dict):
                raise TypeError("lead body is not an object")
            return lead

    async def _send(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        json: object = None,
    ) -> httpx.Response:
        try:
            response = await self._http.request(
                method, self._base_url + path, params=params, json=json, headers=self._headers
            )
        except httpx.TransportError as exc:
            # The type name says enough (timeout, refused…); the request, with its
            # Authorization header, stays out of the message.
            raise KommoUnavailable(None, f"{type(exc).__name__} calling {path}") from exc
        if response.is_success:
            return response
        raise _error_from(response)


def _note_from_api(raw: dict[str, Any]) -> KommoNote:
    params = raw.get("params") or {}
    return KommoNote(
        id=int(raw["id"]),
        entity_id=int(raw["entity_id"]),
        note_type=str(raw["note_type"]),
        text=params.get("text"),
        created_at=int(raw["created_at"]),
    )


@contextmanager
def _expecting_kommo_shape(response: httpx.Response) -> Iterator[None]:
    """Turn a success body that is not what Kommo documents into a KommoError, not a KeyError."""
    try:
        yield
    except (ValueError, LookupError, TypeError) as exc:
        raise KommoError(response.status_code, "unexpected response body from Kommo") from exc


def _error_from(response: httpx.Response) -> KommoError:
    status = response.status_code
    problem = _problem_body(response)
    detail = str(problem.get("detail") or problem.get("title") or response.reason_phrase)
    match status:
        case 400:
            errors = problem.get("validation-errors")
            return KommoValidationError(
                status, detail, validation_errors=errors if isinstance(errors, list) else []
            )
        case 401:
            return KommoAuthError(status, detail)
        case 404:
            return KommoNotFound(status, detail)
        case 429:
            return KommoRateLimited(status, detail, retry_after=_retry_after(response))
        case _ if status >= 500:
            return KommoUnavailable(status, detail)
        case _:
            return KommoError(status, detail)


def _problem_body(response: httpx.Response) -> dict[str, Any]:
    """Kommo's RFC 7807 body (`title`, `detail`, …); a proxy's HTML error page yields {}."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(response: httpx.Response) -> float | None:
    # Only the delta-seconds form is read; an HTTP-date or garbage counts as "not said",
    # and the caller falls back to its own backoff.
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None
