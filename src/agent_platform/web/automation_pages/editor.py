"""The visual rule editor: a trigger's event, condition tree, actions and limits, saved through
the triggers service (its validation, its errors with their paths) and tried on a sample
event before anything is saved."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import Response

from agent_platform.automation.clock import organization_zone
from agent_platform.automation.dry_run import rendered_action
from agent_platform.automation.events import TRIGGER_EVENTS, EventType
from agent_platform.automation.rules.service import dry_run_conditions, list_rules
from agent_platform.automation.rules.validation import InvalidAutomationError, parsed_actions
from agent_platform.automation.sequences.service import list_sequences
from agent_platform.automation.triggers import service as triggers
from agent_platform.automation.triggers.schemas import TriggerIn, TriggerPatch
from agent_platform.db.session import tenant_transaction
from agent_platform.kit.pagination import MAX_LIMIT, PageRequest
from agent_platform.organization.permissions import Permission, allowed, require
from agent_platform.services import Services
from agent_platform.web.auth import CsrfCheckedUser, CurrentUser, SignedInUser
from agent_platform.web.automation_pages.catalog import editor_catalog
from agent_platform.web.automation_pages.trigger_form import (
    EVENT_PARAMETERS,
    SAMPLE_INPUTS,
    EditorError,
    EditorRefusedError,
    TriggerForm,
)
from agent_platform.web.i18n import request_language, translator
from agent_platform.web.rendering import render
from agent_platform.web.routing import PageRoute, redirect

router = APIRouter(route_class=PageRoute, include_in_schema=False)

NEW_PATH = "/app/automation/triggers/new"
TEST_PATH = "/app/automation/triggers/test"
# In the order the event picker lists them: as docs/automation.md does.
EVENT_TYPES = [kind.value for kind in EventType if kind in TRIGGER_EVENTS]


def trigger_path(trigger_id: uuid.UUID) -> str:
    return f"/app/automation/triggers/{trigger_id}"


@dataclass(frozen=True)
class DryRunShown:
    """A test's outcome as the editor shows it: the trace, or why the test could not run."""

    matched: bool = False
    trace: dict[str, Any] = field(default_factory=dict)
    facts: dict[str, Any] = field(default_factory=dict)
    would_perform: list[dict[str, Any]] = field(default_factory=list)
    error: EditorError | None = None


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def _posted(request: Request) -> TriggerForm:
    return TriggerForm.of_posted(await request.form())


async def _editor(
    request: Request,
    user: SignedInUser,
    form: TriggerForm,
    *,
    trigger_id: uuid.UUID | None,
    error: EditorError | None = None,
    dry_run: DryRunShown | None = None,
    saved: bool = False,
) -> Response:
    services = _services(request)
    first_page = PageRequest(limit=MAX_LIMIT)
    rules = await list_rules(services, user.organization_id, None, first_page)
    sequences = await list_sequences(services, user.organization_id, None, None, first_page)
    catalog = editor_catalog(translator(request_language(request)), rules.items, sequences.items)
    return render(
        request,
        "automation/editor.html",
        status_code=422 if error is not None else 200,
        form=form,
        trigger_id=trigger_id,
        action_path=NEW_PATH if trigger_id is None else trigger_path(trigger_id),
        test_path=TEST_PATH,
        catalog_json=json.dumps(catalog, ensure_ascii=False),
        event_types=EVENT_TYPES,
        event_parameters=EVENT_PARAMETERS,
        sample_inputs=SAMPLE_INPUTS,
        error=error,
        dry_run=dry_run,
        saved=saved,
        can_manage=allowed(user.role, Permission.MANAGE_AUTOMATION),
    )


@router.get(NEW_PATH)
async def new_trigger(request: Request, user: CurrentUser, agent_id: str = "") -> Response:
    require(user.role, Permission.MANAGE_AUTOMATION)
    return await _editor(request, user, TriggerForm(agent_id=agent_id), trigger_id=None)


@router.post(NEW_PATH)
async def create_trigger(request: Request, user: CsrfCheckedUser) -> Response:
    require(user.role, Permission.MANAGE_AUTOMATION)
    form = await _posted(request)
    try:
        body = TriggerIn.model_validate(form.trigger_body())
        trigger = await triggers.create_trigger(_services(request), user.organization_id, body)
    except EditorRefusedError as refused:
        return await _editor(request, user, form, trigger_id=None, error=refused.error)
    except ValidationError as invalid:
        error = EditorError.of_validation(invalid)
        return await _editor(request, user, form, trigger_id=None, error=error)
    except InvalidAutomationError as invalid:
        error = EditorError.of_app_error(invalid)
        return await _editor(request, user, form, trigger_id=None, error=error)
    return redirect(trigger_path(trigger.id) + "?saved=1")


@router.post(TEST_PATH)
async def test_trigger(request: Request, user: CsrfCheckedUser) -> Response:
    """The posted editor tried on its sample event: nothing is saved, done or recorded."""
    form = await _posted(request)
    shown = await _dry_run(_services(request), user, form)
    if request.headers.get("hx-request") == "true":
        return render(request, "automation/dry_run.html", dry_run=shown)
    trigger_id = _editing(request)
    return await _editor(request, user, form, trigger_id=trigger_id, dry_run=shown)


def _editing(request: Request) -> uuid.UUID | None:
    """The trigger a test was posted from, when it was a saved one (its page's `trigger`)."""
    try:
        return uuid.UUID(request.query_params.get("trigger", ""))
    except ValueError:
        return None


async def _dry_run(services: Services, user: SignedInUser, form: TriggerForm) -> DryRunShown:
    try:
        body = form.trigger_body()
        event = triggers.parse_trigger_event(body["event"])
        actions = (
            parsed_actions(
                body["actions"],
                event_type=EventType(event["type"]),
                in_sequence=False,
                allow_private_networks=services.settings.automation_webhook_allow_private_networks,
            )
            if body["actions"]
            else []
        )
        async with tenant_transaction(services.sessions, user.organization_id) as session:
            zone = await organization_zone(session, user.organization_id)
        sample = form.sample_event(zone)
        evaluation, facts = await dry_run_conditions(
            services, user.organization_id, body["conditions"], sample
        )
    except EditorRefusedError as refused:
        return DryRunShown(error=refused.error)
    except InvalidAutomationError as invalid:
        return DryRunShown(error=EditorError.of_app_error(invalid))
    would_perform = (
        [rendered_action(action, facts.current) for action in actions] if evaluation.matched else []
    )
    return DryRunShown(
        matched=evaluation.matched,
        trace=evaluation.trace,
        facts=dict(facts.current),
        would_perform=would_perform,
    )


@router.get("/app/automation/triggers/{trigger_id}")
async def edit_trigger(
    request: Request, user: CurrentUser, trigger_id: uuid.UUID, saved: bool = False
) -> Response:
    trigger = await triggers.TRIGGERS.get(_services(request), user.organization_id, trigger_id)
    form = TriggerForm.of_trigger(trigger)
    return await _editor(request, user, form, trigger_id=trigger.id, saved=saved)


@router.post("/app/automation/triggers/{trigger_id}")
async def update_trigger(
    request: Request, user: CsrfCheckedUser, trigger_id: uuid.UUID
) -> Response:
    require(user.role, Permission.MANAGE_AUTOMATION)
    services = _services(request)
    # Another organization's trigger is a 404 before anything posted is looked at.
    await triggers.TRIGGERS.get(services, user.organization_id, trigger_id)
    form = await _posted(request)
    try:
        patch = TriggerPatch.model_validate(form.trigger_body())
        await triggers.update_trigger(services, user.organization_id, trigger_id, patch)
    except EditorRefusedError as refused:
        return await _editor(request, user, form, trigger_id=trigger_id, error=refused.error)
    except ValidationError as invalid:
        error = EditorError.of_validation(invalid)
        return await _editor(request, user, form, trigger_id=trigger_id, error=error)
    except InvalidAutomationError as invalid:
        error = EditorError.of_app_error(invalid)
        return await _editor(request, user, form, trigger_id=trigger_id, error=error)
    return redirect(trigger_path(trigger_id) + "?saved=1")


@router.post("/app/automation/triggers/{trigger_id}/delete")
async def delete_trigger(
    request: Request, user: CsrfCheckedUser, trigger_id: uuid.UUID
) -> Response:
    require(user.role, Permission.MANAGE_AUTOMATION)
    await triggers.delete_trigger(_services(request), user.organization_id, trigger_id)
    return redirect("/app/automation")
