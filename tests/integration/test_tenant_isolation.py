"""Tenant isolation, endpoint by endpoint: for every /api/v1 route that names an object in its
path, organization B's API key gets 404 for organization A's object, whatever the method; and
for every dashboard page (/app/…) naming one, B's signed-in owner gets 404 as well.

The routes come from the application's route table, not from a list kept by hand: a new
endpoint is covered the day it is added, and one whose path names a kind of object the
fixture does not make fails here, by name, until tests/support/tenant_objects.py makes one.
Underneath, PostgreSQL's row-level security shows B none of A's rows in any tenant table."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from sqlalchemy import Table, func, select, text
from sqlalchemy.exc import DBAPIError

from agent_platform.app import create_app
from agent_platform.config import Settings
from agent_platform.db.models import Base
from agent_platform.db.session import TENANT_ROLE, tenant_transaction, transaction
from agent_platform.organization.api_keys import create_api_key
from agent_platform.organization.invitations import create_invitation
from agent_platform.organization.models import Membership, Role, User
from agent_platform.organization.web_sessions import start_session
from agent_platform.services import Services
from tests.support.clients import integrator
from tests.support.factories import ConnectedAgent, create_connected_agent
from tests.support.people import create_member
from tests.support.tenant_objects import TenantObjects, create_tenant_objects
from tests.support.web_client import form_token, signed_in

API_PREFIX = "/api/v1/"


@dataclass(frozen=True)
class Endpoint:
    """One method of a route whose path names objects by its `params`."""

    method: str
    path: str
    params: tuple[str, ...]
    # Its operation in the OpenAPI document `spec` (request body and query parameters).
    operation: dict[str, Any]
    spec: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.method} {self.path}"

    def url(self, objects: TenantObjects) -> str:
        return self.path.format(**{param: objects.ids[param] for param in self.params})

    def query(self, caller: TenantObjects) -> dict[str, Any]:
        """The required query parameters, at their smallest."""
        return {
            param["name"]: _minimal_value(param["schema"], self.spec, caller, param["name"])
            for param in self.operation.get("parameters", [])
            if param["in"] == "query" and param.get("required")
        }

    def body(self, caller: TenantObjects) -> Any:
        """The smallest body its schema accepts, None when it takes none."""
        content = self.operation.get("requestBody", {}).get("content", {})
        if "application/json" not in content:
            return None
        return _minimal_value(content["application/json"]["schema"], self.spec, caller, name="")


class UnsuppliedFieldError(Exception):
    """A required body or query field names an object kind the objects do not hold."""


def object_endpoints(app: FastAPI) -> list[Endpoint]:
    """Every method of every /api/v1 route with a path parameter, from the route table."""
    spec = app.openapi()
    endpoints = []
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if not path.startswith(API_PREFIX) or "{" not in path:
            continue
        if not isinstance(route.original_route, APIRoute):
            pytest.fail(f"{path} is no APIRoute: this test cannot read its parameters")
        params = tuple(param.name for param in route.dependant.path_params)
        for method in sorted(route.methods or ()):
            operation = spec["paths"].get(path, {}).get(method.lower())
            if operation is None:
                pytest.fail(f"{method} {path} is missing from the OpenAPI document")
            endpoints.append(Endpoint(method, path, params, operation, spec))
    # Deleting last, so that every other method meets the objects as the fixture made them.
    return sorted(endpoints, key=lambda endpoint: endpoint.method == "DELETE")


def _minimal_value(
    schema: dict[str, Any], spec: dict[str, Any], caller: TenantObjects, name: str
) -> Any:
    """The smallest value `schema` accepts (objects with their required fields only). A field
    naming an object (`connection_id`, …) or a lead gets the caller's own, so that in a request
    only the path's object may be foreign to the caller."""
    if "$ref" in schema:
        return _minimal_value(_resolved(schema["$ref"], spec), spec, caller, name)
    for union in ("anyOf", "oneOf"):
        if union in schema:
            options = [option for option in schema[union] if option.get("type") != "null"]
            return _minimal_value(options[0], spec, caller, name)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if name == "lead_id":
        return caller.lead_id
    if kind == "string" and (name in caller.ids or schema.get("format") == "uuid"):
        if name not in caller.ids:
            raise UnsuppliedFieldError(name)
        return caller.ids[name]
    if kind == "object":
        properties = schema.get("properties", {})
        fields = list(schema.get("required", []))
        if not fields and not name:
            # The body itself requires nothing (a PATCH): it must still name one thing to change.
            fields = list(properties)[:1]
        return {field: _minimal_value(properties[field], spec, caller, field) for field in fields}
    if kind == "array":
        item = schema.get("items", {})
        return [_minimal_value(item, spec, caller, name) for _ in range(schema.get("minItems", 0))]
    if kind == "string":
        if schema.get("format") == "date-time":
            return datetime.now(UTC).isoformat()
        return "x" * max(schema.get("minLength", 1), 1)
    if kind in ("integer", "number"):
        return int(schema.get("minimum", 1))
    if kind == "boolean":
        return False
    return None


def _resolved(reference: str, spec: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = spec
    for part in reference.removeprefix("#/").split("/"):
        found = found[part]
    return found


async def _request(
    api: httpx.AsyncClient, endpoint: Endpoint, target: TenantObjects, caller: TenantObjects
) -> httpx.Response:
    """`endpoint` on `target`'s objects, by `caller` (whose objects fill body and query)."""
    return await api.request(
        endpoint.method,
        endpoint.url(target),
        params=endpoint.query(caller),
        json=endpoint.body(caller),
    )


def _not_found(response: httpx.Response) -> bool:
    """404 with the contract's error body."""
    if response.status_code != httpx.codes.NOT_FOUND:
        return False
    body = response.json()
    return isinstance(body, dict) and isinstance(body.get("error"), dict)


@pytest.fixture
async def beta(services: Services, sandbox: tuple[str, str]) -> ConnectedAgent:
    """Organization B, connected to the same sandbox as A, so that it owns a connection and
    leads to put in bodies."""
    return await create_connected_agent(
        services, kommo_url=sandbox[0], kommo_token=sandbox[1], name="Beta"
    )


async def test_another_organizations_objects_are_not_found_on_any_endpoint(
    services: Services,
    settings: Settings,
    api_url: str,
    connected: ConnectedAgent,
    beta: ConnectedAgent,
) -> None:
    assert settings.database_url
    endpoints = object_endpoints(create_app(settings, settings.database_url))
    async with (
        integrator(services, connected.organization_id, api_url) as acme_api,
        integrator(services, beta.organization_id, api_url) as beta_api,
    ):
        acme = await create_tenant_objects(acme_api, connected.connection_id)
        own = await create_tenant_objects(beta_api, beta.connection_id)

        unsupplied = [
            f"{endpoint}: no object for {{{param}}}"
            for endpoint in endpoints
            for param in endpoint.params
            if param not in acme.ids
        ]
        assert not unsupplied, "tests/support/tenant_objects.py makes no object for:\n" + (
            "\n".join(unsupplied)
        )

        refused: list[str] = []
        for endpoint in endpoints:
            try:
                response = await _request(beta_api, endpoint, acme, own)
            except UnsuppliedFieldError as missing:
                refused.append(f"{endpoint}: no object for the request's {missing}")
                continue
            if not _not_found(response):
                refused.append(f"{endpoint}: {response.status_code} {response.text[:300]}")
        assert not refused, "B got otherwise than 404 for A's object:\n" + "\n".join(refused)

        # The control: with A's own key the same requests find the objects and accept the
        # bodies, so B's 404s come from whose objects they are (and B changed none of them).
        # DELETE has no body to prove and would take the objects from the requests after it.
        failed: list[str] = []
        for endpoint in endpoints:
            if endpoint.method == "DELETE":
                continue
            response = await _request(acme_api, endpoint, acme, acme)
            if response.status_code in (404, 422) or response.status_code >= 500:
                failed.append(f"{endpoint}: {response.status_code} {response.text[:300]}")
        assert not failed, "A's own request was refused:\n" + "\n".join(failed)


async def _rows_seen(
    services: Services, *, scope: ConnectedAgent, owner: ConnectedAgent, tables: list[Table]
) -> dict[str, int | str]:
    """How many of `owner`'s rows each table shows in a transaction scoped to `scope`'s
    organization (no WHERE on the scope: only the policies decide), or why it cannot be read."""
    seen: dict[str, int | str] = {}
    for table in tables:
        try:
            async with tenant_transaction(services.sessions, scope.organization_id) as session:
                seen[table.name] = await session.scalar(
                    select(func.count())
                    .select_from(table)
                    .where(table.c.organization_id == owner.organization_id)
                )
        except DBAPIError as refused:
            seen[table.name] = f"unreadable by {TENANT_ROLE}: {refused.orig}"
    return seen


def _tenant_tables() -> list[Table]:
    return [table for table in Base.metadata.sorted_tables if "organization_id" in table.c]


async def _add_account_rows(services: Services, organization_id: uuid.UUID) -> None:
    """What no /api/v1 route makes: a member, their web session, an invitation."""
    async with transaction(services.sessions) as session:
        user = User(email=f"owner-{uuid.uuid4().hex[:8]}@example.com", name="Owner")
        session.add(user)
        await session.flush()
        session.add(Membership(organization_id=organization_id, user_id=user.id, role="owner"))
        await start_session(
            session,
            user_id=user.id,
            organization_id=organization_id,
            ip=None,
            user_agent=None,
            two_factor_passed=True,
        )
        await create_invitation(
            session,
            organization_id=organization_id,
            email="newcomer@example.com",
            role="member",
            invited_by=user.id,
        )


async def test_row_level_security_shows_b_none_of_as_rows_in_any_tenant_table(
    services: Services, api_url: str, connected: ConnectedAgent, beta: ConnectedAgent
) -> None:
    async with integrator(services, connected.organization_id, api_url) as acme_api:
        await create_tenant_objects(acme_api, connected.connection_id)
    await _add_account_rows(services, connected.organization_id)
    tables = _tenant_tables()
    assert tables, "Base.metadata names no table with an organization_id"

    async with transaction(services.sessions) as session:
        unprotected = [
            name
            for (name,) in await session.execute(
                text(
                    "SELECT c.relname FROM pg_class c WHERE c.relname = ANY(:names) AND NOT ("
                    "c.relrowsecurity AND EXISTS (SELECT FROM pg_policies p WHERE "
                    "p.tablename = c.relname AND :role = ANY(p.roles)))"
                ),
                {"names": [table.name for table in tables], "role": TENANT_ROLE},
            )
        ]
        owned = {
            table.name: await session.scalar(
                select(func.count())
                .select_from(table)
                .where(table.c.organization_id == connected.organization_id)
            )
            for table in tables
        }
    assert unprotected == [], "tenant tables without row-level security for the tenant role"
    assert sum(owned.values()) > 0, f"A owns no rows to hide: {owned}"

    seen_by_a = await _rows_seen(services, scope=connected, owner=connected, tables=tables)
    seen_by_b = await _rows_seen(services, scope=beta, owner=connected, tables=tables)
    assert seen_by_b == {table.name: 0 for table in tables}, f"A's rows per table: {owned}"
    assert seen_by_a == owned


PAGE_PREFIX = "/app/"
# Page routes whose parameter is no object of an organization (a path segment's vocabulary).
PAGE_KINDS = {"kind": "triggers"}


def page_routes(app: FastAPI) -> list[tuple[str, str, tuple[str, ...], dict[str, str]]]:
    """Every method of every dashboard page route naming an object: (method, path, params,
    the form fields it requires, each given a value of its type)."""
    found = []
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if not path.startswith(PAGE_PREFIX) or "{" not in path:
            continue
        params = tuple(param.name for param in route.dependant.path_params)
        form = {
            field.alias: _form_value(field.field_info.annotation)
            for field in route.dependant.body_params
            if field.field_info.is_required()
        }
        found += [(method, path, params, form) for method in sorted(route.methods or ())]
    # Removing and revoking last, so that every other page meets the objects as made.
    return sorted(found, key=lambda route: route[0] == "POST" and "/remove" in route[1])


def _form_value(annotation: Any) -> str:
    """A value of a form field's type: a choice's first option, else any text."""
    options = getattr(annotation, "__args__", None) or [
        member.value for member in getattr(annotation, "__members__", {}).values()
    ]
    return str(options[0]) if options else "x"


async def _account_objects(services: Services, organization_id: uuid.UUID) -> dict[str, str]:
    """A's objects only the dashboard names: a member's membership, an invitation, a key."""
    async with transaction(services.sessions) as session:
        user = User(email=f"member-{uuid.uuid4().hex[:8]}@example.com", name="Member")
        session.add(user)
        await session.flush()
        membership = Membership(organization_id=organization_id, user_id=user.id, role="member")
        session.add(membership)
        invitation, _ = await create_invitation(
            session,
            organization_id=organization_id,
            email="invitee@example.com",
            role="member",
            invited_by=None,
        )
        key = await create_api_key(
            session,
            organization_id=organization_id,
            name="Sync",
            scopes=["read"],
            created_by=user.id,
        )
        await session.flush()
        return {
            "membership_id": str(membership.id),
            "invitation_id": str(invitation.id),
            "api_key_id": str(key.summary.id),
        }


async def test_another_organizations_objects_are_not_found_on_any_page(
    services: Services,
    settings: Settings,
    api_url: str,
    connected: ConnectedAgent,
    beta: ConnectedAgent,
) -> None:
    assert settings.database_url
    routes = page_routes(create_app(settings, settings.database_url))
    assert routes, "the dashboard names no object in any page path"
    async with integrator(services, connected.organization_id, api_url) as acme_api:
        acme = await create_tenant_objects(acme_api, connected.connection_id)
    ids = acme.ids | await _account_objects(services, connected.organization_id)
    ids["row_id"] = ids["trigger_id"]
    unsupplied = [
        f"{method} {path}: no object for {{{param}}}"
        for method, path, params, _ in routes
        for param in params
        if param not in ids and param not in PAGE_KINDS
    ]
    assert not unsupplied, "\n".join(unsupplied)
    owner = await create_member(services, beta.organization_id, Role.OWNER)

    async with signed_in(api_url, owner) as page:
        token = form_token(await page.get("/app"))
        answers = {}
        for method, path, params, form in routes:
            url = path.format(**{param: PAGE_KINDS.get(param) or ids[param] for param in params})
            response = await (
                page.get(url)
                if method == "GET"
                else page.post(url, data=form | {"csrf_token": token})
            )
            answers[f"{method} {path}"] = response.status_code

    assert {route: code for route, code in answers.items() if code != 404} == {}
