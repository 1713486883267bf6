"""What every sandbox API route shares: Kommo's HAL and problem bodies, paging, auth, query
parsing, batch limits and the custom-field checks.

Kommo's conventions, kept here once:
- success bodies are `application/hal+json` with `_links.self` (and `_links.next` while there
  is a next page), lists under `_embedded[<name>]`, `_page` for paged lists;
- an empty list or an unknown id is a bare 204;
- errors are RFC 7807 `application/problem+json`; a refused write is a 400 whose
  `validation-errors` names each failing item (its `request_id`, else its position) and field
  path (`custom_fields_values.0.field_id`), and nothing of the batch is written;
- `limit` is at most 250 and a write takes at most 50 items.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Iterable, Sequence
from http import HTTPStatus
from typing import Annotated, Any, NamedTuple, TypeVar

from fastapi import Body, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException

from agent_platform.crm.sandbox.store import (
    CustomFieldDefinition,
    EntityType,
    FieldValue,
    FieldValues,
    SandboxStore,
)

MAX_PAGE_SIZE = 250  # Kommo's cap on `limit`
DEFAULT_PAGE_SIZE = 50
MAX_BATCH_SIZE = 50  # Kommo's cap on the items of one write
# "Not a valid choice" is how Kommo words an unknown id in validation-errors.
NOT_A_CHOICE = "The value you selected is not a valid choice."


class HalJSONResponse(JSONResponse):
    media_type = "application/hal+json"


class ProblemJSONResponse(JSONResponse):
    media_type = "application/problem+json"


class FieldError(NamedTuple):
    """One entry of Kommo's `validation-errors`: which item, which field, what is wrong."""

    request_id: str
    path: str
    code: str
    detail: str


class InvalidRequest(Exception):  # noqa: N818 - raised and rendered as Kommo's 400
    """Raised by a route to answer Kommo's 400 with these field errors."""

    def __init__(self, errors: Sequence[FieldError]) -> None:
        super().__init__(f"{len(errors)} validation errors")
        self.errors = list(errors)


def bad_query(path: str, code: str, detail: str) -> InvalidRequest:
    """Kommo's 400 for a query parameter: no batch item's fault, so it names item "0"."""
    return InvalidRequest([FieldError("0", path, code, detail)])


# --- requests ------------------------------------------------------------------------------


def require_token(request: Request) -> None:
    """Kommo's 401 unless the request carries a token the sandbox accepts."""
    given = request.headers.get("Authorization", "")
    token = given.removeprefix("Bearer ") if given.startswith("Bearer ") else ""
    accepts: Callable[[str], bool] = request.app.state.accepts_token
    if not token or not accepts(token):
        raise HTTPException(HTTPStatus.UNAUTHORIZED, "Invalid or missing access token")


def fixed_token(access_token: str) -> Callable[[str], bool]:
    expected = access_token.encode()
    return lambda token: secrets.compare_digest(token.encode(), expected)


def _store(request: Request) -> SandboxStore:
    store: SandboxStore = request.app.state.store
    return store


Store = Annotated[SandboxStore, Depends(_store)]
Page = Annotated[int, Query(ge=1)]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)]

Item = TypeVar("Item")
# Kommo's writes take a non-empty JSON array of at most 50 items.
Batch = Annotated[list[Item], Body(min_length=1, max_length=MAX_BATCH_SIZE)]


class KommoItem(BaseModel):
    # Kommo checks JSON types strictly ("5" is not an id); fields the sandbox does not model
    # are ignored, as Kommo ignores fields it does not know.
    model_config = ConfigDict(strict=True, populate_by_name=True)

    # Echoed back so a client can match created records to the items it sent.
    request_id: str | None = None

    def rid(self, index: int) -> str:
        """The item's name in answers and errors: its request_id, else its position."""
        return self.request_id or str(index)


def check_batch(store: SandboxStore, items: Sequence[object]) -> None:
    """504 for a batch larger than the store's `gateway_timeout_above` switch allows."""
    if store.batch_times_out(len(items)):
        raise HTTPException(HTTPStatus.GATEWAY_TIMEOUT, "Gateway Time-out")


_BRACKET = re.compile(r"\[([^\]]*)\]")


def bracket_query(request: Request) -> dict[str, Any]:
    """The query string read the PHP way, as Kommo reads it.

    `filter[id][]=1&filter[id][]=2&filter[statuses][0][status_id]=5&order[id]=desc` becomes
    `{"filter": {"id": ["1", "2"], "statuses": {"0": {"status_id": "5"}}}, "order": {"id":
    "desc"}}`; a key given twice without `[]` keeps its last value.
    """
    parsed: dict[str, Any] = {}
    for key, value in request.query_params.multi_items():
        head, _, rest = key.partition("[")
        parts = [head, *_BRACKET.findall("[" + rest)] if rest else [head]
        node = parsed
        for depth, part in enumerate(parts):
            last = depth == len(parts) - 1
            if last:
                if part == "":
                    continue
                node[part] = value
            elif parts[depth + 1] == "" and depth + 1 == len(parts) - 1:
                existing = node.get(part)
                node[part] = [*existing, value] if isinstance(existing, list) else [value]
                break
            else:
                child = node.get(part)
                if not isinstance(child, dict):
                    child = node[part] = {}
                node = child
    return parsed


def filters_of(query: dict[str, Any]) -> dict[str, Any]:
    """The `filter[…]` part of a bracket query; Kommo's 400 when it is not an object."""
    filters = query.get("filter") or {}
    if not isinstance(filters, dict):
        raise bad_query("filter", "InvalidType", "filter is an object")
    return filters


def many(node: Any) -> list[str]:
    """A filter value given as `x[]=1&x[]=2`, `x[0]=1`, `x=1` or `x=1,2`, as strings."""
    if node is None:
        return []
    if isinstance(node, dict):
        return [str(value) for value in node.values()]
    if isinstance(node, list):
        return [str(value) for value in node]
    return [part for part in str(node).split(",") if part != ""]


def many_ints(node: Any, path: str) -> list[int]:
    try:
        return [int(value) for value in many(node)]
    except ValueError:
        raise bad_query(path, "InvalidType", "This value should be of type int.") from None


class TimeRange(NamedTuple):
    start: int | None
    end: int | None

    def holds(self, moment: int | None) -> bool:
        if moment is None:
            return False
        return (self.start is None or moment >= self.start) and (
            self.end is None or moment <= self.end
        )


def time_range(node: Any, path: str) -> TimeRange | None:
    """`x[from]=…&x[to]=…`, or a single `x=…` meaning "from then on", as Kommo takes it."""
    if node is None:
        return None
    try:
        if isinstance(node, dict):
            start, end = node.get("from"), node.get("to")
            return TimeRange(int(start) if start else None, int(end) if end else None)
        return TimeRange(int(node), None)
    except (TypeError, ValueError):
        raise bad_query(path, "InvalidType", "This value should be a unix time.") from None


def ordering(
    query: dict[str, Any], allowed: Iterable[str], default: str = "id"
) -> tuple[str, bool]:
    """`order[field]=asc|desc` as (field, descending); one of `allowed` fields only."""
    order = query.get("order")
    if order is None:
        return default, False
    allowed = tuple(allowed)
    if not isinstance(order, dict) or len(order) != 1:
        raise bad_query("order", "InvalidOrder", f"Order by one of {', '.join(allowed)}.")
    [(field, direction)] = order.items()
    if field not in allowed or direction not in ("asc", "desc"):
        raise bad_query(
            f"order.{field}",
            "NotSupportedChoice",
            f"Order by one of {', '.join(allowed)}, asc or desc.",
        )
    return field, direction == "desc"


def with_values(query: dict[str, Any]) -> set[str]:
    return {part.strip() for part in many(query.get("with"))}


# --- responses -----------------------------------------------------------------------------


def self_link(request: Request, path: str) -> dict[str, Any]:
    # Links point at the sandbox itself, as Kommo's point at the account's own domain.
    return {"self": {"href": str(request.base_url).rstrip("/") + path}}


def page_response(
    request: Request,
    key: str,
    items: list[dict[str, Any]],
    *,
    page: int,
    limit: int,
    total: bool = False,
) -> Response:
    """One page of a list, with `_links.next` while more follow; 204 past the end."""
    start = (page - 1) * limit
    chunk = items[start : start + limit]
    if not chunk:
        return no_content()
    links = {"self": {"href": str(request.url.include_query_params(page=page, limit=limit))}}
    if start + limit < len(items):
        links["next"] = {"href": str(request.url.include_query_params(page=page + 1, limit=limit))}
    body: dict[str, Any] = {"_page": page, "_links": links, "_embedded": {key: chunk}}
    if total:
        body = {
            "_total_items": len(items),
            "_page": page,
            "_page_count": -(-len(items) // limit),
            **body,
        }
    return HalJSONResponse(body)


def added_row(
    request: Request, index: int, item: KommoItem, record_id: int, path: str
) -> dict[str, Any]:
    return {"id": record_id, "request_id": item.rid(index), "_links": self_link(request, path)}


def batch_answer(request: Request, key: str, rows: list[dict[str, Any]]) -> Response:
    """Kommo's answer to a batch write: per item its id, its request_id and a link to it."""
    return HalJSONResponse(
        {"_links": self_link(request, request.url.path), "_embedded": {key: rows}}
    )


def no_content() -> Response:
    return Response(status_code=HTTPStatus.NO_CONTENT)


def problem(status: int, detail: str, extra: dict[str, Any] | None = None) -> Response:
    body = {
        "title": HTTPStatus(status).phrase,
        "type": f"https://httpstatus.es/{int(status)}",
        "status": int(status),
        "detail": detail,
        **(extra or {}),
    }
    return ProblemJSONResponse(body, status_code=status)


def validation_failed(errors: Iterable[FieldError]) -> Response:
    by_item: dict[str, list[dict[str, str]]] = {}
    for error in errors:
        by_item.setdefault(error.request_id, []).append(
            {"code": error.code, "path": error.path, "detail": error.detail}
        )
    per_item = [{"request_id": item, "errors": entries} for item, entries in by_item.items()]
    return problem(
        HTTPStatus.BAD_REQUEST, "Request validation failed", {"validation-errors": per_item}
    )


def not_found(what: str) -> HTTPException:
    return HTTPException(HTTPStatus.NOT_FOUND, f"{what} not found")


# --- custom fields ---------------------------------------------------------------------------


class FieldValueIn(BaseModel):
    model_config = ConfigDict(strict=True)

    value: str | int | float | bool | None = None
    enum_id: int | None = None
    enum_code: str | None = None


class CustomFieldValuesIn(BaseModel):
    model_config = ConfigDict(strict=True)

    field_id: int | None = None
    field_code: str | None = None
    # None or [] clears the field.
    values: list[FieldValueIn] | None = None


class TagRefIn(BaseModel):
    model_config = ConfigDict(strict=True)

    id: int | None = None
    name: str | None = Field(default=None, min_length=1)


class EntityRefIn(BaseModel):
    model_config = ConfigDict(strict=True)

    id: int
    is_main: bool | None = None


_SCALAR_TYPES = {
    "text",
    "textarea",
    "url",
    "streetaddress",
    "tracking_data",
    "legal_entity",
    "smart_address",
}
_TIME_TYPES = {"date", "date_time", "birthday"}
_CHOICE_TYPES = {"select", "radiobutton", "multiselect"}


def resolve_custom_fields(
    store: SandboxStore,
    entity_type: EntityType,
    items: Sequence[CustomFieldValuesIn] | None,
    request_id: str,
    prefix: str = "custom_fields_values",
) -> tuple[list[FieldError], list[FieldValues]]:
    """Check values against the account's field definitions; the errors, or what to store."""
    errors: list[FieldError] = []
    resolved: list[FieldValues] = []
    for i, item in enumerate(items or []):
        here = f"{prefix}.{i}"
        if item.field_id is not None:
            named_by = "field_id"
            definition = store.custom_field(entity_type, field_id=item.field_id)
        elif item.field_code is not None:
            named_by = "field_code"
            definition = store.custom_field(entity_type, code=item.field_code)
        else:
            errors.append(
                FieldError(
                    request_id, f"{here}.field_id", "NotBlank", "This value should not be blank."
                )
            )
            continue
        if definition is None:
            path = f"{here}.{named_by}"
            errors.append(FieldError(request_id, path, "NotSupportedChoice", NOT_A_CHOICE))
            continue
        values: list[FieldValue] = []
        for j, value in enumerate(item.values or []):
            checked = _checked_value(definition, value)
            if isinstance(checked, FieldError):
                where = f"{here}.values.{j}.{checked.path}"
                errors.append(FieldError(request_id, where, checked.code, checked.detail))
            else:
                values.append(checked)
        if definition.type in {"select", "radiobutton"} and len(values) > 1:
            errors.append(
                FieldError(
                    request_id, f"{here}.values", "TooManyValues", "This field takes one value."
                )
            )
        resolved.append(FieldValues(definition.id, tuple(values)))
    return errors, resolved


def _checked_value(
    definition: CustomFieldDefinition, given: FieldValueIn
) -> FieldValue | FieldError:
    value = given.value
    if definition.type in _CHOICE_TYPES:
        choice = definition.enum(enum_id=given.enum_id) if given.enum_id is not None else None
        if choice is None and isinstance(value, str):
            choice = next(
                (e for e in definition.enums if e.value.casefold() == value.casefold()), None
            )
        if choice is None:
            path = "enum_id" if given.enum_id is not None else "value"
            return FieldError("", path, "NotSupportedChoice", NOT_A_CHOICE)
        return FieldValue(choice.value, choice.id)
    if definition.type == "multitext":
        if not isinstance(value, str) or not value.strip():
            return FieldError("", "value", "NotBlank", "This value should be a non-empty string.")
        if given.enum_id is not None:
            kind = definition.enum(enum_id=given.enum_id)
            path = "enum_id"
        else:
            kind = definition.enum(code=given.enum_code or definition.enums[0].value)
            path = "enum_code"
        if kind is None:
            return FieldError("", path, "NotSupportedChoice", NOT_A_CHOICE)
        return FieldValue(value, kind.id, kind.value)
    if definition.type == "checkbox":
        if not isinstance(value, bool):
            return FieldError("", "value", "InvalidType", "This value should be of type bool.")
        return FieldValue(value)
    if definition.type == "numeric":
        if isinstance(value, bool) or value is None:
            return FieldError("", "value", "InvalidType", "This value should be a number.")
        try:
            float(value)
        except ValueError:
            return FieldError("", "value", "InvalidType", "This value should be a number.")
        # Kommo answers numbers as it stores them: as text.
        return FieldValue(str(value))
    if definition.type in _TIME_TYPES:
        if isinstance(value, bool) or not isinstance(value, int):
            return FieldError("", "value", "InvalidType", "This value should be a unix time.")
        return FieldValue(value)
    if isinstance(value, bool) or value is None or value == "":
        return FieldError("", "value", "NotBlank", "This value should be a non-empty string.")
    return FieldValue(str(value))


def merged_fields(
    existing: Sequence[FieldValues], written: Sequence[FieldValues]
) -> tuple[FieldValues, ...]:
    """Writing a field replaces its values; writing no values clears it."""
    by_id = {values.field_id: values for values in existing}
    for values in written:
        by_id[values.field_id] = values
    return tuple(values for values in by_id.values() if values.values)


def render_custom_fields(
    store: SandboxStore, entity_type: EntityType, fields: Sequence[FieldValues]
) -> list[dict[str, Any]] | None:
    """`custom_fields_values` as Kommo answers it: null when a record has none."""
    rendered = []
    for values in fields:
        definition = store.custom_field(entity_type, field_id=values.field_id)
        if definition is None:
            continue
        rendered.append(
            {
                "field_id": definition.id,
                "field_name": definition.name,
                "field_code": definition.code,
                "field_type": definition.type,
                "values": [_rendered_value(v) for v in values.values],
            }
        )
    return rendered or None


def _rendered_value(value: FieldValue) -> dict[str, Any]:
    rendered: dict[str, Any] = {"value": value.value}
    if value.enum_id is not None:
        rendered["enum_id"] = value.enum_id
    if value.enum_code is not None:
        rendered["enum_code"] = value.enum_code
    return rendered


def resolve_tags(
    store: SandboxStore,
    entity_type: EntityType,
    refs: Sequence[TagRefIn],
    request_id: str,
    prefix: str,
) -> tuple[list[FieldError], list[int | str]]:
    """Tags named by id (must exist) or by name (created on write); ids and names to attach."""
    errors: list[FieldError] = []
    wanted: list[int | str] = []
    for k, ref in enumerate(refs):
        if ref.id is not None:
            if store.tag(entity_type, ref.id) is None:
                errors.append(
                    FieldError(request_id, f"{prefix}.{k}.id", "NotSupportedChoice", NOT_A_CHOICE)
                )
            else:
                wanted.append(ref.id)
        elif ref.name is not None:
            wanted.append(ref.name)
        else:
            errors.append(
                FieldError(request_id, f"{prefix}.{k}", "NotBlank", "A tag needs an id or a name.")
            )
    return errors, wanted


def attach_tags(
    store: SandboxStore, entity_type: EntityType, wanted: Sequence[int | str]
) -> tuple[int, ...]:
    ids = [ref if isinstance(ref, int) else store.add_tag(entity_type, ref).id for ref in wanted]
    return tuple(dict.fromkeys(ids))


def render_tags(
    store: SandboxStore, entity_type: EntityType, tag_ids: Sequence[int]
) -> list[dict[str, Any]]:
    tags = [store.tag(entity_type, tag_id) for tag_id in tag_ids]
    return [{"id": t.id, "name": t.name, "color": t.color} for t in tags if t is not None]


def responsible_errors(
    store: SandboxStore, user_id: int | None, request_id: str
) -> list[FieldError]:
    if user_id is None or store.user(user_id) is not None:
        return []
    return [FieldError(request_id, "responsible_user_id", "NotSupportedChoice", NOT_A_CHOICE)]


def matches_query(needle: str, *haystack: object) -> bool:
    """Kommo's `query`: a case-insensitive match in any filled field of the record."""
    wanted = needle.casefold().strip()
    digits = "".join(ch for ch in wanted if ch.isdigit())
    for value in haystack:
        text = str(value).casefold()
        if wanted in text:
            return True
        # Phone numbers match whatever their formatting.
        if len(digits) >= 5 and digits in "".join(ch for ch in text if ch.isdigit()):
            return True
    return False


def field_texts(fields: Sequence[FieldValues]) -> list[object]:
    return [v.value for values in fields for v in values.values if v.value is not None]
