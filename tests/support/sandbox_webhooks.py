"""Reading the Kommo sandbox's webhook subscriptions the way a client of Kommo's API does."""

from __future__ import annotations

from typing import Any

import httpx


async def sandbox_webhooks(sandbox_url: str, access_token: str) -> list[dict[str, Any]]:
    """The account's webhook subscriptions (`GET /api/v4/webhooks`; 204 when there is none)."""
    async with httpx.AsyncClient() as kommo:
        response = await kommo.get(
            f"{sandbox_url}/api/v4/webhooks", headers={"Authorization": f"Bearer {access_token}"}
        )
    if response.status_code == 204:
        return []
    response.raise_for_status()
    webhooks: list[dict[str, Any]] = response.json()["_embedded"]["webhooks"]
    return webhooks
