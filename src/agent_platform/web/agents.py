"""Pages: the agents list and create form, and an agent's edit page.

The edit page's tabs are separate addresses: Main (/app/agents/{id}, with the versions),
Triggers, Sequences, Integrations and Advanced; every tab carries the playground
(web.agent_pages.playground). Changes go through agent.management as the REST API's do: a
change of settings is saved as a new version, which answers customers once published.
"""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.responses import Response

from agent_platform.agent import management
from agent_platform.agent.models import AgentStatus
from agent_platform.agent.repository import AgentRecord
from agent_platform.agent.schemas import AgentCreate, AgentPatch
from agent_platform.automation.sequences.service import SEQUENCES
from agent_platform.automation.triggers.service import TRIGGERS
from agent_platform.kit.errors import NotFoundError
from agent_platform.kit.pagination import PageCursor, PageRequest, RowsPage
from agent_platform.organization.permissions import Permission, allowed, require
from agent_platform.services import Services
from agent_platform.web.agent_pages import forms, playground
from agent_platform.web.agent_pages.loading import (
    EditedAgent,
    agent_sequences,
    agent_triggers,
    answering_connections,
    edited_agent,
)
from agent_platform.web.auth import CsrfCheckedUser, CurrentUser, SignedInUser
from agent_platform.web.i18n import request_language, translator
from agent_platform.web.rendering import render
from agent_platform.web.routing import PageRoute, redirect

router = APIRouter(route_class=PageRoute, include_in_schema=False)
router.include_router(playground.router)

LIST_PAGE_SIZE = 50
TABS = ("main", "triggers", "sequences", "integrations", "advanced")
# What a redirect after a change may ask the page to say (?notice=…).
NOTICES = frozenset({"saved", "unchanged", "published", "rolled_back", "created"})
STATUS_CHOICES = (AgentStatus.ACTIVE.value, AgentStatus.PAUSED.value)


class RowNotOfAgentError(NotFoundError):
    """A trigger or sequence of the organization, but not of the agent whose page it is."""

    code = "not_found"


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def _agent_path(agent_id: uuid.UUID, tab: str = "main") -> str:
    return f"/app/agents/{agent_id}" + ("" if tab == "main" else f"/{tab}")


def _with_notice(path: str, notice: str) -> str:
    return f"{path}?notice={notice}"


def _text(form: FormData, name: str) -> str:
    value = form.get(name, "")
    return value if isinstance(value, str) else ""


def _checked_tools(form: FormData) -> list[str]:
    return [value for value in form.getlist("tools") if isinstance(value, str)]


# The list and the create form.


def _list_page(
    request: Request,
    user: SignedInUser,
    *,
    agents: list[AgentRecord],
    next_cursor: str | None,
    values: dict[str, str],
    errors: forms.FieldErrors,
    status_code: int = 200,
) -> Response:
    return render(
        request,
        "agents/list.html",
        status_code=status_code,
        agents=agents,
        next_cursor=next_cursor,
        values=values,
        errors=errors,
        can_manage=allowed(user.role, Permission.MANAGE_AGENTS),
    )


async def _listed(
    request: Request, user: SignedInUser, cursor: str | None
) -> RowsPage[AgentRecord]:
    return await management.list_agents(
        _services(request),
        user.as_principal(),
        None,
        PageRequest.parse(LIST_PAGE_SIZE, cursor),
    )


@router.get("/app/agents")
async def agents_list(request: Request, user: CurrentUser, cursor: PageCursor = None) -> Response:
    found = await _listed(request, user, cursor)
    default_model = _services(request).settings.llm_default_model or ""
    return _list_page(
        request,
        user,
        agents=found.items,
        next_cursor=found.next_cursor,
        values={"name": "", "instructions": "", "model": default_model},
        errors={},
    )


@router.post("/app/agents")
async def create_agent(request: Request, user: CsrfCheckedUser) -> Response:
    require(user.role, Permission.MANAGE_AGENTS)
    form = await request.form()
    values = forms.main_settings(form)
    try:
        body = AgentCreate.model_validate(values)
    except ValidationError as invalid:
        found = await _listed(request, user, None)
        return _list_page(
            request,
            user,
            agents=found.items,
            next_cursor=found.next_cursor,
            values=values,
            errors=forms.field_errors(invalid, forms.MAIN_FIELDS),
            status_code=422,
        )
    record = await management.create_agent(_services(request), user.as_principal(), body)
    return redirect(_with_notice(_agent_path(record.agent.id), "created"))


# The edit page and its tabs.


def _edit_page(
    request: Request,
    user: SignedInUser,
    edited: EditedAgent,
    tab: str,
    *,
    notice: str | None = None,
    status_code: int = 200,
    **context: Any,
) -> Response:
    return render(
        request,
        f"agents/tab_{tab}.html",
        status_code=status_code,
        agent=edited.record.agent,
        record=edited.record,
        settings=edited.settings,
        tab=tab,
        tabs=TABS,
        agent_path=_agent_path(edited.record.agent.id),
        notice=notice if notice in NOTICES else None,
        can_manage=allowed(user.role, Permission.MANAGE_AGENTS),
        can_automate=allowed(user.role, Permission.MANAGE_AUTOMATION),
        **context,
    )


def _main_tab(
    request: Request,
    user: SignedInUser,
    edited: EditedAgent,
    *,
    notice: str | None = None,
    values: dict[str, str] | None = None,
    errors: forms.FieldErrors | None = None,
    status_code: int = 200,
) -> Response:
    settings = edited.settings
    return _edit_page(
        request,
        user,
        edited,
        "main",
        notice=notice,
        status_code=status_code,
        versions=edited.versions,
        has_more_versions=edited.has_more_versions,
        values=values
        or {
            "name": settings.name,
            "instructions": settings.instructions,
            "model": settings.model,
            "status": edited.record.agent.status,
        },
        status_choices=_status_choices(edited.record.agent.status),
        errors=errors or {},
    )


def _status_choices(current: str) -> list[str]:
    return [current, *(status for status in STATUS_CHOICES if status != current)]


@router.get("/app/agents/{agent_id}")
async def main_tab(
    request: Request, user: CurrentUser, agent_id: uuid.UUID, notice: str | None = None
) -> Response:
    edited = await edited_agent(_services(request), user, agent_id)
    return _main_tab(request, user, edited, notice=notice)


@router.post("/app/agents/{agent_id}")
async def save_main(request: Request, user: CsrfCheckedUser, agent_id: uuid.UUID) -> Response:
    require(user.role, Permission.MANAGE_AGENTS)
    services = _services(request)
    edited = await edited_agent(services, user, agent_id)
    form = await request.form()
    settings = forms.main_settings(form)
    status = _text(form, "status")
    values = {**settings, "status": status}
    current_status = edited.record.agent.status
    errors: forms.FieldErrors = {}
    if status not in _status_choices(current_status):
        errors["status"] = [translator(request_language(request))("agents.status_invalid")]
    try:
        wanted = AgentPatch.model_validate(settings).settings_changes()
    except ValidationError as invalid:
        errors |= forms.field_errors(invalid, forms.MAIN_FIELDS)
    if errors:
        return _main_tab(request, user, edited, values=values, errors=errors, status_code=422)
    patch: dict[str, Any] = forms.changed(wanted, edited.settings)
    if status != current_status:
        patch["status"] = status
    if not patch:
        return redirect(_with_notice(_agent_path(agent_id), "unchanged"))
    try:
        await management.update_agent(
            services, user.as_principal(), agent_id, AgentPatch.model_validate(patch)
        )
    except management.NotPublishedError as refused:
        return _main_tab(
            request,
            user,
            edited,
            values=values,
            errors={"status": [refused.message]},
            status_code=409,
        )
    return redirect(_with_notice(_agent_path(agent_id), "saved"))


@router.post("/app/agents/{agent_id}/versions/{number}/publish")
async def publish_version(
    request: Request, user: CsrfCheckedUser, agent_id: uuid.UUID, number: int
) -> Response:
    require(user.role, Permission.MANAGE_AGENTS)
    await management.publish(_services(request), user.as_principal(), agent_id, number)
    return redirect(_with_notice(_agent_path(agent_id), "published"))


@router.post("/app/agents/{agent_id}/versions/{number}/rollback")
async def roll_back_version(
    request: Request, user: CsrfCheckedUser, agent_id: uuid.UUID, number: int
) -> Response:
    require(user.role, Permission.MANAGE_AGENTS)
    await management.roll_back(_services(request), user.as_principal(), agent_id, number)
    return redirect(_with_notice(_agent_path(agent_id), "rolled_back"))


@router.get("/app/agents/{agent_id}/triggers")
async def triggers_tab(request: Request, user: CurrentUser, agent_id: uuid.UUID) -> Response:
    services = _services(request)
    edited = await edited_agent(services, user, agent_id)
    rows = await agent_triggers(services, user, agent_id)
    return _edit_page(request, user, edited, "triggers", triggers=rows)


@router.post("/app/agents/{agent_id}/triggers/{trigger_id}/enabled")
async def switch_trigger(
    request: Request, user: CsrfCheckedUser, agent_id: uuid.UUID, trigger_id: uuid.UUID
) -> Response:
    require(user.role, Permission.MANAGE_AUTOMATION)
    services = _services(request)
    trigger = await TRIGGERS.get(services, user.organization_id, trigger_id)
    if trigger.agent_id != agent_id:
        raise RowNotOfAgentError(f"No trigger {trigger_id} of this agent.")
    enabled = _text(await request.form(), "enabled") == "true"
    await TRIGGERS.set_enabled(services, user.organization_id, trigger_id, enabled)
    return redirect(_agent_path(agent_id, "triggers"))


@router.get("/app/agents/{agent_id}/sequences")
async def sequences_tab(request: Request, user: CurrentUser, agent_id: uuid.UUID) -> Response:
    services = _services(request)
    edited = await edited_agent(services, user, agent_id)
    rows = await agent_sequences(services, user, agent_id)
    return _edit_page(request, user, edited, "sequences", sequences=rows)


@router.post("/app/agents/{agent_id}/sequences/{sequence_id}/enabled")
async def switch_sequence(
    request: Request, user: CsrfCheckedUser, agent_id: uuid.UUID, sequence_id: uuid.UUID
) -> Response:
    require(user.role, Permission.MANAGE_AUTOMATION)
    services = _services(request)
    sequence = await SEQUENCES.get(services, user.organization_id, sequence_id)
    if sequence.agent_id != agent_id:
        raise RowNotOfAgentError(f"No sequence {sequence_id} of this agent.")
    enabled = _text(await request.form(), "enabled") == "true"
    await SEQUENCES.set_enabled(services, user.organization_id, sequence_id, enabled)
    return redirect(_agent_path(agent_id, "sequences"))


@router.get("/app/agents/{agent_id}/integrations")
async def integrations_tab(request: Request, user: CurrentUser, agent_id: uuid.UUID) -> Response:
    services = _services(request)
    edited = await edited_agent(services, user, agent_id)
    connections = await answering_connections(services, user, agent_id)
    return _edit_page(request, user, edited, "integrations", connections=connections)


def _advanced_tab(
    request: Request,
    user: SignedInUser,
    edited: EditedAgent,
    *,
    values: forms.FormValues,
    errors: forms.FieldErrors,
    notice: str | None = None,
    status_code: int = 200,
) -> Response:
    return _edit_page(
        request,
        user,
        edited,
        "advanced",
        notice=notice,
        status_code=status_code,
        values=values,
        errors=errors,
        weekdays=forms.WEEKDAYS,
        tool_names=forms.TOOLS,
        outside_hours_choices=forms.OUTSIDE_HOURS,
    )


@router.get("/app/agents/{agent_id}/advanced")
async def advanced_tab(
    request: Request, user: CurrentUser, agent_id: uuid.UUID, notice: str | None = None
) -> Response:
    edited = await edited_agent(_services(request), user, agent_id)
    return _advanced_tab(
        request,
        user,
        edited,
        values=forms.advanced_values(edited.settings),
        errors={},
        notice=notice,
    )


@router.post("/app/agents/{agent_id}/advanced")
async def save_advanced(request: Request, user: CsrfCheckedUser, agent_id: uuid.UUID) -> Response:
    require(user.role, Permission.MANAGE_AGENTS)
    services = _services(request)
    edited = await edited_agent(services, user, agent_id)
    form = await request.form()
    tools = _checked_tools(form)
    try:
        wanted = AgentPatch.model_validate(forms.advanced_settings(form, tools)).settings_changes()
    except ValidationError as invalid:
        return _advanced_tab(
            request,
            user,
            edited,
            values=forms.posted_values(form, tools),
            errors=forms.field_errors(invalid, forms.ADVANCED_INPUTS),
            status_code=422,
        )
    patch = forms.changed(wanted, edited.settings)
    path = _agent_path(agent_id, "advanced")
    if not patch:
        return redirect(_with_notice(path, "unchanged"))
    await management.update_agent(
        services, user.as_principal(), agent_id, AgentPatch.model_validate(patch)
    )
    return redirect(_with_notice(path, "saved"))
