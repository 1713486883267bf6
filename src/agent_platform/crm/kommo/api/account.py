"""How the account is set up: pipelines and stages, users, custom fields, tags, webhooks.

Endpoints (Kommo API v4): `GET /api/v4/account`, `GET /api/v4/leads/pipelines[/{id}]`,
`GET /api/v4/users[/{id}]`, `GET /api/v4/{leads|contacts|companies}/custom_fields[/{id}]`,
`GET/POST /api/v4/{entity}/tags`, `GET/POST/DELETE /api/v4/webhooks`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

from agent_platform.crm.kommo.api.transport import (
    MAX_PAGE_SIZE,
    KommoTransport,
    expecting_kommo_shape,
    list_params,
    rows_in,
)
from agent_platform.crm.kommo.errors import KommoNotFound
from agent_platform.crm.kommo.models import (
    Account,
    CustomField,
    EntityType,
    Pipeline,
    Tag,
    TagInput,
    User,
    Webhook,
)


class AccountApi:
    def __init__(self, transport: KommoTransport) -> None:
        self._t = transport

    async def get(self) -> Account:
        body = await self._t.get_object("/api/v4/account", missing="account not found")
        return Account.model_validate(body)


class PipelinesApi:
    def __init__(self, transport: KommoTransport) -> None:
        self._t = transport

    async def all(self) -> list[Pipeline]:
        """Every pipeline with its stages; each ends with 142 (won) and 143 (lost)."""
        rows = await self._t.get_collection("/api/v4/leads/pipelines", "pipelines")
        return [Pipeline.model_validate(row) for row in rows]

    async def get(self, pipeline_id: int) -> Pipeline:
        body = await self._t.get_object(
            f"/api/v4/leads/pipelines/{pipeline_id}", missing=f"pipeline {pipeline_id} not found"
        )
        return Pipeline.model_validate(body)


class UsersApi:
    def __init__(self, transport: KommoTransport) -> None:
        self._t = transport

    async def iterate(self, *, page_size: int = MAX_PAGE_SIZE) -> AsyncIterator[User]:
        async for row in self._t.pages("/api/v4/users", "users", page_size=page_size):
            yield User.model_validate(row)

    async def get(self, user_id: int) -> User:
        body = await self._t.get_object(
            f"/api/v4/users/{user_id}", missing=f"user {user_id} not found"
        )
        return User.model_validate(body)


class CustomFieldsApi:
    """Field definitions, read to learn ids, codes and enum choices before writing values."""

    def __init__(self, transport: KommoTransport) -> None:
        self._t = transport

    async def iterate(
        self, entity_type: EntityType, *, page_size: int = MAX_PAGE_SIZE
    ) -> AsyncIterator[CustomField]:
        async for row in self._t.pages(
            f"/api/v4/{entity_type}/custom_fields", "custom_fields", page_size=page_size
        ):
            yield CustomField.model_validate(row)

    async def get(self, entity_type: EntityType, field_id: int) -> CustomField:
        body = await self._t.get_object(
            f"/api/v4/{entity_type}/custom_fields/{field_id}",
            missing=f"{entity_type} custom field {field_id} not found",
        )
        return CustomField.model_validate(body)


class TagsApi:
    """Each entity type has its own tag list (a tag's id differs between leads and contacts)."""

    def __init__(self, transport: KommoTransport) -> None:
        self._t = transport

    async def iterate(
        self,
        entity_type: EntityType,
        *,
        name: str | None = None,
        query: str | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> AsyncIterator[Tag]:
        params = list_params(filter={"name": name} if name else None, query=query)
        async for row in self._t.pages(
            f"/api/v4/{entity_type}/tags", "tags", params=params, page_size=page_size
        ):
            yield Tag.model_validate(row)

    async def add(self, entity_type: EntityType, tags: Sequence[TagInput]) -> list[Tag]:
        rows = await self._t.write_batched(
            "POST", f"/api/v4/{entity_type}/tags", [t.to_kommo() for t in tags], rows_in("tags")
        )
        return [Tag.model_validate(row) for row in rows]


class WebhooksApi:
    """The account's webhook subscriptions (administrator rights; at most 100 per account)."""

    def __init__(self, transport: KommoTransport) -> None:
        self._t = transport

    async def all(self, *, destination: str | None = None) -> list[Webhook]:
        params = list_params(filter={"destination": destination} if destination else None)
        rows = await self._t.get_collection("/api/v4/webhooks", "webhooks", params=params)
        return [Webhook.model_validate(row) for row in rows]

    async def subscribe(
        self, destination: str, settings: Sequence[str], *, sort: int | None = None
    ) -> Webhook:
        """Send the events named in `settings` (`add_lead`, `status_lead`, `note_lead`…) to
        `destination`. Subscribing a destination again replaces its settings."""
        body: dict[str, object] = {"destination": destination, "settings": list(settings)}
        if sort is not None:
            body["sort"] = sort
        response = await self._t.request("POST", "/api/v4/webhooks", json=body)
        with expecting_kommo_shape(response):
            return Webhook.model_validate(response.json())

    async def unsubscribe(self, destination: str) -> bool:
        """Stop sending to `destination`; False when it was not subscribed (nothing to do)."""
        try:
            await self._t.request("DELETE", "/api/v4/webhooks", json={"destination": destination})
        except KommoNotFound:
            return False
        return True
