"""Sequences through the API: create, read, change, delete, enable, dry-run; enroll a lead,
list, stop, pause and resume enrollments.

A change of steps or stop conditions raises the version; enrollments under way keep the copy
they started with (sequences.enrollment). Deleting a sequence stops its open enrollments
first, so their pending step jobs are cancelled rather than left to find nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.automation.clock import organization_zone
from agent_platform.automation.dry_run import SampleEvent, rendered_action
from agent_platform.automation.engine import Evaluation, Facts, RuleError, evaluate
from agent_platform.automation.events import EventType, Origin
from agent_platform.automation.models import Enrollment, EnrollmentStatus, Sequence
from agent_platform.automation.resources import (
    Resource,
    RowNotFoundError,
    apply_sent,
    delete,
    saved,
)
from agent_platform.automation.rules.lookup import rules_for
from agent_platform.automation.rules.validation import (
    InvalidAutomationError,
    check_connection,
    check_rules_exist,
    check_sequences_exist,
    check_storable,
    parsed_condition,
)
from agent_platform.automation.sequences import repository
from agent_platform.automation.sequences.definition import parse_steps, parse_stop_on
from agent_platform.automation.sequences.enrollment import (
    enroll,
    get_enrollment,
    pause_enrollment,
    resume_enrollment,
    stop_enrollment,
)
from agent_platform.automation.sequences.schemas import EnrollmentIn, SequenceIn, SequencePatch
from agent_platform.automation.triggers.repository import agent_exists
from agent_platform.db.session import tenant_transaction, transaction
from agent_platform.kit.errors import ConflictError
from agent_platform.kit.pagination import PageRequest, RowsPage
from agent_platform.services import Services

STOPPED_BY_API = "stopped by API"
STOPPED_BY_DELETION = "the sequence was deleted"


class SequenceNotFoundError(RowNotFoundError):
    code = "sequence_not_found"
    noun = "sequence"


SEQUENCES = Resource(Sequence, SequenceNotFoundError)


class EnrollmentNotFoundError(RowNotFoundError):
    code = "enrollment_not_found"
    noun = "enrollment"


class SequenceDisabledError(ConflictError):
    code = "sequence_disabled"


class AlreadyEnrolledError(ConflictError):
    code = "already_enrolled"


class SequenceInUseError(ConflictError):
    code = "sequence_in_use"


@dataclass(frozen=True)
class SequenceDefinition:
    steps: list[dict[str, Any]]
    stop_on: dict[str, Any]


async def _validated(
    session: AsyncSession,
    services: Services,
    organization_id: uuid.UUID,
    *,
    steps: object,
    stop_on: object,
    agent_id: uuid.UUID | None,
) -> SequenceDefinition:
    check_storable(steps, "steps")
    check_storable(stop_on, "stop_on")
    try:
        stored_steps = parse_steps(
            steps,
            allow_private_networks=services.settings.automation_webhook_allow_private_networks,
        )
        stored_stop_on = parse_stop_on(stop_on)
    except RuleError as error:
        raise InvalidAutomationError.of(error) from error
    for index, step in enumerate(stored_steps):
        path = f"steps[{index}]"
        condition = parsed_condition(
            step["conditions"], allow_rule_refs=True, path=f"{path}.conditions"
        )
        await check_rules_exist(session, organization_id, condition, f"{path}.conditions")
        await check_sequences_exist(session, organization_id, step["actions"], f"{path}.actions")
    if agent_id is not None and not await agent_exists(session, organization_id, agent_id):
        raise InvalidAutomationError("agent_id", f"no agent {agent_id} in this organization")
    return SequenceDefinition(stored_steps, stored_stop_on)


async def create_sequence(
    services: Services, organization_id: uuid.UUID, body: SequenceIn
) -> Sequence:
    async with tenant_transaction(services.sessions, organization_id) as session:
        definition = await _validated(
            session,
            services,
            organization_id,
            steps=body.steps,
            stop_on=body.stop_on,
            agent_id=body.agent_id,
        )
        return await saved(
            session,
            Sequence(
                organization_id=organization_id,
                agent_id=body.agent_id,
                name=body.name,
                enabled=body.enabled,
                steps=definition.steps,
                stop_on=definition.stop_on,
                version=1,
            ),
        )


async def list_sequences(
    services: Services,
    organization_id: uuid.UUID,
    agent_id: uuid.UUID | None,
    enabled: bool | None,
    page: PageRequest,
) -> RowsPage[Sequence]:
    async with tenant_transaction(services.sessions, organization_id) as session:
        return page.cut(
            await repository.list_sequences(session, organization_id, agent_id, enabled, page)
        )


async def update_sequence(
    services: Services, organization_id: uuid.UUID, sequence_id: uuid.UUID, patch: SequencePatch
) -> Sequence:
    sent = patch.model_fields_set
    async with tenant_transaction(services.sessions, organization_id) as session:
        sequence = await SEQUENCES.found(session, organization_id, sequence_id, for_update=True)
        definition = await _validated(
            session,
            services,
            organization_id,
            steps=patch.steps if "steps" in sent else sequence.steps,
            stop_on=patch.stop_on if "stop_on" in sent else sequence.stop_on,
            agent_id=patch.agent_id if "agent_id" in sent else sequence.agent_id,
        )
        if (definition.steps, definition.stop_on) != (sequence.steps, sequence.stop_on):
            sequence.steps = definition.steps
            sequence.stop_on = definition.stop_on
            sequence.version += 1
        apply_sent(sequence, patch, ("name", "enabled"), nullable=("agent_id",))
        return await saved(session, sequence)


async def delete_sequence(
    services: Services, organization_id: uuid.UUID, sequence_id: uuid.UUID
) -> None:
    # Not the tenant role: stopping cancels queue jobs, which are no organization's rows.
    async with transaction(services.sessions) as session:
        sequence = await SEQUENCES.found(session, organization_id, sequence_id, for_update=True)
        users = await repository.users_of_sequence(session, organization_id, sequence_id)
        if users:
            raise SequenceInUseError(
                f"The sequence is named by {', '.join(users)}: remove those actions first.",
                details={"used_by": users},
            )
        for enrollment in await repository.open_enrollments_of(
            session, organization_id, sequence_id
        ):
            await stop_enrollment(session, enrollment, STOPPED_BY_DELETION)
        await delete(session, sequence)


@dataclass(frozen=True)
class StepDryRun:
    index: int
    name: str | None
    evaluation: Evaluation
    would_perform: list[dict[str, Any]]


async def dry_run_sequence(
    services: Services, organization_id: uuid.UUID, sequence_id: uuid.UUID, sample: SampleEvent
) -> tuple[list[StepDryRun], Facts]:
    """Each step's conditions on the sample, and its actions as they would be performed;
    nothing is done and nothing recorded."""
    async with tenant_transaction(services.sessions, organization_id) as session:
        sequence = await SEQUENCES.found(session, organization_id, sequence_id)
        conditions = [
            parsed_condition(
                step.get("conditions"), allow_rule_refs=True, path=f"steps[{index}].conditions"
            )
            for index, step in enumerate(sequence.steps)
        ]
        rules = {}
        for condition in conditions:
            rules.update(await rules_for(session, organization_id, condition))
        zone = await organization_zone(session, organization_id)
    event = sample.event(EventType.MANUAL)
    facts = sample.facts(event, zone)
    found = []
    for index, (step, condition) in enumerate(zip(sequence.steps, conditions, strict=True)):
        evaluation = evaluate(condition, facts, rules)
        would_perform = (
            [rendered_action(action, facts.current) for action in step.get("actions", [])]
            if evaluation.matched
            else []
        )
        found.append(StepDryRun(index, step.get("name"), evaluation, would_perform))
    return found, facts


# --- enrollments -----------------------------------------------------------------------------


async def list_enrollments(
    services: Services,
    organization_id: uuid.UUID,
    sequence_id: uuid.UUID,
    status: EnrollmentStatus | None,
    page: PageRequest,
) -> RowsPage[Enrollment]:
    async with tenant_transaction(services.sessions, organization_id) as session:
        await SEQUENCES.found(session, organization_id, sequence_id)
        return page.cut(
            await repository.list_enrollments(session, organization_id, sequence_id, status, page)
        )


async def enroll_lead(
    services: Services, organization_id: uuid.UUID, sequence_id: uuid.UUID, body: EnrollmentIn
) -> Enrollment:
    # Not the tenant role: enrolling defers the first step's job.
    async with transaction(services.sessions) as session:
        sequence = await SEQUENCES.found(session, organization_id, sequence_id)
        if not sequence.enabled:
            raise SequenceDisabledError("The sequence is disabled: enable it to enroll leads.")
        await check_connection(session, organization_id, body.connection_id)
        enrollment = await enroll(
            session,
            services,
            organization_id=organization_id,
            sequence_id=sequence_id,
            connection_id=body.connection_id,
            lead_id=body.lead_id,
            origin=Origin(),
            now=datetime.now(UTC),
        )
        if enrollment is None:
            raise AlreadyEnrolledError(
                f"Lead {body.lead_id} walks this sequence already: stop that enrollment first."
            )
        await session.refresh(enrollment)
    return enrollment


async def stop(
    services: Services, organization_id: uuid.UUID, enrollment_id: uuid.UUID
) -> Enrollment:
    async with transaction(services.sessions) as session:
        enrollment = await _enrollment(session, organization_id, enrollment_id)
        await stop_enrollment(session, enrollment, STOPPED_BY_API)
        await session.refresh(enrollment)
    return enrollment


async def pause(
    services: Services, organization_id: uuid.UUID, enrollment_id: uuid.UUID
) -> Enrollment:
    async with transaction(services.sessions) as session:
        enrollment = await _enrollment(session, organization_id, enrollment_id)
        await pause_enrollment(session, enrollment)
        await session.refresh(enrollment)
    return enrollment


async def resume(
    services: Services, organization_id: uuid.UUID, enrollment_id: uuid.UUID
) -> Enrollment:
    async with transaction(services.sessions) as session:
        enrollment = await _enrollment(session, organization_id, enrollment_id)
        await resume_enrollment(session, services, enrollment, now=datetime.now(UTC))
        await session.flush()
        await session.refresh(enrollment)
    return enrollment


async def _enrollment(
    session: AsyncSession, organization_id: uuid.UUID, enrollment_id: uuid.UUID
) -> Enrollment:
    enrollment = await get_enrollment(session, organization_id, enrollment_id, for_update=True)
    if enrollment is None:
        raise EnrollmentNotFoundError(enrollment_id)
    return enrollment
