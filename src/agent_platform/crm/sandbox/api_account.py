"""Sandbox routes for the account's setup, as Kommo API v4 answers them.

`GET /api/v4/account`; `GET /api/v4/users[/{id}]`; `GET /api/v4/leads/pipelines[/{id}]` and
`/{id}/statuses[/{status_id}]`; `GET /api/v4/{leads|contacts|companies}/custom_fields[/{id}]`;
`GET/POST /api/v4/{entity}/tags` (filter[name], filter[id], query); webhook subscriptions:
`GET /api/v4/webhooks` (filter[destination]), `POST` (a destination subscribed again has its
settings replaced), `DELETE` with `{"destination"}`. Sending the webhooks is not done here:
the store keeps the subscriptions (`store.webhooks_for(...)`) for whoever sends them.
"""

from __future__ import annotations

from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Body, Depends, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from agent_platform.crm.sandbox.api_common import (
    NOT_A_CHOICE,
    Batch,
    FieldError,
    HalJSONResponse,
    KommoItem,
    Limit,
    Page,
    Store,
    bracket_query,
    check_batch,
    many_ints,
    matches_query,
    no_content,
    not_found,
    page_response,
    require_token,
    self_link,
    validation_failed,
)
from agent_platform.crm.sandbox.store import (
    ACCOUNT_ID,
    USER_ID,
    CustomFieldDefinition,
    EntityType,
    Pipeline,
    Stage,
    Tag,
    User,
    Webhook,
)

router = APIRouter(prefix="/api/v4", dependencies=[Depends(require_token)])

# Kommo's limit on webhooks per account.
MAX_WEBHOOKS = 100
# What a webhook can be subscribed to (Kommo's names for them).
WEBHOOK_SETTINGS = frozenset(
    f"{action}_{entity}"
    for entity, actions in {
        "lead": ("add", "update", "delete", "restore", "status", "responsible", "note"),
        "contact": ("add", "update", "delete", "restore", "responsible", "note"),
        "company": ("add", "update", "delete", "restore", "responsible", "note"),
        "customer": ("add", "update", "delete", "responsible", "note"),
        "task": ("add", "update", "delete", "responsible"),
        "unsorted": ("add", "update", "delete"),
        "talk": ("add", "update"),
        "message": ("add",),
        "outgoing_message": ("add",),
    }.items()
    for action in actions
)


@router.get("/account")
async def get_account(request: Request, store: Store) -> Response:
    return HalJSONResponse(
        {
            "id": ACCOUNT_ID,
            "name": f"{request.app.state.subdomain} (Kommo sandbox)",
            "subdomain": request.app.state.subdomain,
            "created_at": store.created_at,
            "created_by": 0,
            "updated_at": store.created_at,
            "updated_by": 0,
            "current_user_id": USER_ID,
            "country": "US",
            "currency": "USD",
            "currency_symbol": "$",
            "customers_mode": "disabled",
            "is_unsorted_on": True,
            "is_loss_reason_enabled": True,
            "is_helpbot_enabled": False,
            "is_technical_account": True,
            "contact_name_display_order": 1,
            "_links": self_link(request, "/api/v4/account"),
        }
    )


# --- users -----------------------------------------------------------------------------------


@router.get("/users")
async def list_users(request: Request, store: Store, page: Page = 1, limit: Limit = 50) -> Response:
    users = [user_json(request, user) for user in store.users()]
    return page_response(request, "users", users, page=page, limit=limit, total=True)


@router.get("/users/{user_id:int}")
async def get_user(request: Request, store: Store, user_id: int) -> Response:
    user = store.user(user_id)
    return no_content() if user is None else HalJSONResponse(user_json(request, user))


def user_json(request: Request, user: User) -> dict[str, Any]:
    full = {"view": "A", "edit": "A", "add": "A", "delete": "A", "export": "A"}
    return {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "lang": user.lang,
        "rights": {
            "leads": full,
            "contacts": full,
            "companies": full,
            "tasks": {"edit": "A", "delete": "A"},
            "mail_access": False,
            "catalog_access": False,
            "status_rights": [],
            "is_admin": user.is_admin,
            "is_free": False,
            "is_active": True,
            "group_id": None,
            "role_id": None,
        },
        "_links": self_link(request, f"/api/v4/users/{user.id}"),
    }


# --- pipelines -------------------------------------------------------------------------------


@router.get("/leads/pipelines")
async def list_pipelines(request: Request, store: Store) -> Response:
    pipelines = [pipeline_json(request, pipeline) for pipeline in store.pipelines()]
    return HalJSONResponse(
        {
            "_total_items": len(pipelines),
            "_links": self_link(request, "/api/v4/leads/pipelines"),
            "_embedded": {"pipelines": pipelines},
        }
    )


@router.get("/leads/pipelines/{pipeline_id:int}")
async def get_pipeline(request: Request, store: Store, pipeline_id: int) -> Response:
    pipeline = store.pipeline(pipeline_id)
    return no_content() if pipeline is None else HalJSONResponse(pipeline_json(request, pipeline))


@router.get("/leads/pipelines/{pipeline_id:int}/statuses")
async def list_statuses(request: Request, store: Store, pipeline_id: int) -> Response:
    pipeline = store.pipeline(pipeline_id)
    if pipeline is None:
        return no_content()
    statuses = [status_json(request, pipeline, stage) for stage in pipeline.stages]
    return HalJSONResponse(
        {
            "_total_items": len(statuses),
            "_links": self_link(request, f"/api/v4/leads/pipelines/{pipeline_id}/statuses"),
            "_embedded": {"statuses": statuses},
        }
    )


@router.get("/leads/pipelines/{pipeline_id:int}/statuses/{status_id:int}")
async def get_status(request: Request, store: Store, pipeline_id: int, status_id: int) -> Response:
    pipeline = store.pipeline(pipeline_id)
    stage = pipeline.stage(status_id) if pipeline else None
    if pipeline is None or stage is None:
        return no_content()
    return HalJSONResponse(status_json(request, pipeline, stage))


def pipeline_json(request: Request, pipeline: Pipeline) -> dict[str, Any]:
    return {
        "id": pipeline.id,
        "name": pipeline.name,
        "sort": pipeline.sort,
        "is_main": pipeline.is_main,
        "is_unsorted_on": True,
        "is_archive": False,
        "account_id": ACCOUNT_ID,
        "_links": self_link(request, f"/api/v4/leads/pipelines/{pipeline.id}"),
        "_embedded": {
            "statuses": [status_json(request, pipeline, stage) for stage in pipeline.stages]
        },
    }


def status_json(request: Request, pipeline: Pipeline, stage: Stage) -> dict[str, Any]:
    return {
        "id": stage.id,
        "name": stage.name,
        "sort": stage.sort,
        "is_editable": stage.is_editable,
        "pipeline_id": pipeline.id,
        "color": stage.color,
        "type": stage.type,
        "account_id": ACCOUNT_ID,
        "_links": self_link(request, f"/api/v4/leads/pipelines/{pipeline.id}/statuses/{stage.id}"),
    }


# --- custom fields ---------------------------------------------------------------------------


@router.get("/{entity_type}/custom_fields")
async def list_custom_fields(
    request: Request, store: Store, entity_type: EntityType, page: Page = 1, limit: Limit = 50
) -> Response:
    fields = [custom_field_json(request, field) for field in store.custom_fields(entity_type)]
    return page_response(request, "custom_fields", fields, page=page, limit=limit, total=True)


@router.get("/{entity_type}/custom_fields/{field_id:int}")
async def get_custom_field(
    request: Request, store: Store, entity_type: EntityType, field_id: int
) -> Response:
    field = store.custom_field(entity_type, field_id=field_id)
    return no_content() if field is None else HalJSONResponse(custom_field_json(request, field))


def custom_field_json(request: Request, field: CustomFieldDefinition) -> dict[str, Any]:
    return {
        "id": field.id,
        "name": field.name,
        "type": field.type,
        "account_id": ACCOUNT_ID,
        "code": field.code,
        "sort": field.sort,
        "is_api_only": False,
        "enums": [{"id": e.id, "value": e.value, "sort": e.sort} for e in field.enums] or None,
        "group_id": None,
        "required_statuses": [],
        "is_deletable": not field.is_predefined,
        "is_predefined": field.is_predefined,
        "entity_type": field.entity_type,
        "tracking_callback": None,
        "remind": None,
        "triggers": [],
        "currency": None,
        "hidden_statuses": [],
        "chained_lists": None,
        "_links": self_link(request, f"/api/v4/{field.entity_type}/custom_fields/{field.id}"),
    }


# --- tags ------------------------------------------------------------------------------------


class TagIn(KommoItem):
    name: str = Field(min_length=1)
    color: str | None = None


@router.get("/{entity_type}/tags")
async def list_tags(
    request: Request, store: Store, entity_type: EntityType, page: Page = 1, limit: Limit = 50
) -> Response:
    query = bracket_query(request)
    filters = query.get("filter")
    filters = filters if isinstance(filters, dict) else {}
    ids = set(many_ints(filters.get("id"), "filter.id"))
    name = filters.get("name")
    text = query.get("query")
    tags = [
        tag
        for tag in store.tags(entity_type)
        if (not ids or tag.id in ids)
        and (name is None or tag.name.casefold() == str(name).casefold())
        and (not text or matches_query(str(text), tag.name))
    ]
    return page_response(request, "tags", [tag_json(tag) for tag in tags], page=page, limit=limit)


@router.post("/{entity_type}/tags")
async def add_tags(
    request: Request, store: Store, entity_type: EntityType, items: Batch[TagIn]
) -> Response:
    """Tags by name; a name the entity type already has gives back the existing tag."""
    check_batch(store, items)
    rows = [
        {
            **tag_json(store.add_tag(entity_type, item.name, item.color)),
            "request_id": item.rid(index),
        }
        for index, item in enumerate(items)
    ]
    return HalJSONResponse({"_total_items": len(rows), "_embedded": {"tags": rows}})


def tag_json(tag: Tag) -> dict[str, Any]:
    return {"id": tag.id, "name": tag.name, "color": tag.color}


# --- webhooks --------------------------------------------------------------------------------


class WebhookIn(BaseModel):
    model_config = ConfigDict(strict=True)

    destination: str = Field(min_length=1)
    settings: list[str] = Field(min_length=1)
    sort: int = 1


class WebhookDeleteIn(BaseModel):
    model_config = ConfigDict(strict=True)

    destination: str = Field(min_length=1)


@router.get("/webhooks")
async def list_webhooks(request: Request, store: Store) -> Response:
    filters = bracket_query(request).get("filter")
    destination = filters.get("destination") if isinstance(filters, dict) else None
    webhooks = [w for w in store.webhooks() if destination is None or w.destination == destination]
    if not webhooks:
        return no_content()
    return HalJSONResponse(
        {
            "_total_items": len(webhooks),
            "_embedded": {"webhooks": [webhook_json(w) for w in webhooks]},
        }
    )


@router.post("/webhooks")
async def subscribe_webhook(store: Store, item: Annotated[WebhookIn, Body()]) -> Response:
    errors = []
    url = urlsplit(item.destination)
    if url.scheme not in ("http", "https") or not url.netloc:
        errors.append(
            FieldError("0", "destination", "InvalidUrl", "This value is not a valid URL.")
        )
    errors += [
        FieldError("0", f"settings.{i}", "NotSupportedChoice", NOT_A_CHOICE)
        for i, setting in enumerate(item.settings)
        if setting not in WEBHOOK_SETTINGS
    ]
    known = {w.destination for w in store.webhooks()}
    if item.destination not in known and len(known) >= MAX_WEBHOOKS:
        errors.append(
            FieldError(
                "0",
                "destination",
                "TooManyWebhooks",
                f"An account has at most {MAX_WEBHOOKS} webhooks.",
            )
        )
    if errors:
        return validation_failed(errors)
    settings = tuple(dict.fromkeys(item.settings))
    return HalJSONResponse(
        webhook_json(store.subscribe_webhook(item.destination, settings, item.sort))
    )


@router.delete("/webhooks")
async def unsubscribe_webhook(store: Store, item: Annotated[WebhookDeleteIn, Body()]) -> Response:
    if not store.unsubscribe_webhook(item.destination):
        raise not_found("Webhook")
    return no_content()


def webhook_json(webhook: Webhook) -> dict[str, Any]:
    return {
        "id": webhook.id,
        "destination": webhook.destination,
        "created_at": webhook.created_at,
        "updated_at": webhook.updated_at,
        "account_id": ACCOUNT_ID,
        "created_by": webhook.created_by,
        "sort": webhook.sort,
        "disabled": webhook.disabled,
        "settings": list(webhook.settings),
    }
