"""`/api/v1/sequences` and their enrollments; `/api/v1/automation/enrollments/{id}/…` to stop,
pause and resume one."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response, status

from agent_platform.automation.models import EnrollmentStatus
from agent_platform.automation.sequences import service
from agent_platform.automation.sequences.schemas import (
    EnrollmentIn,
    EnrollmentOut,
    SequenceDryRunIn,
    SequenceDryRunOut,
    SequenceIn,
    SequenceOut,
    SequencePatch,
    StepDryRunOut,
)
from agent_platform.kit.pagination import DEFAULT_LIMIT, Page, PageCursor, PageLimit, PageRequest
from agent_platform.organization.auth import CurrentPrincipal
from agent_platform.services import Services

router = APIRouter(prefix="/api/v1/sequences", tags=["automation sequences"])
enrollments_router = APIRouter(
    prefix="/api/v1/automation/enrollments", tags=["automation sequences"]
)


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.post("", status_code=status.HTTP_201_CREATED, summary="Create a sequence")
async def create_sequence(
    request: Request, principal: CurrentPrincipal, body: SequenceIn
) -> SequenceOut:
    sequence = await service.create_sequence(_services(request), principal.organization_id, body)
    return SequenceOut.of(sequence)


@router.get("", summary="This organization's sequences, newest first")
async def list_sequences(
    request: Request,
    principal: CurrentPrincipal,
    agent_id: uuid.UUID | None = None,
    enabled: bool | None = None,
    limit: PageLimit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> Page[SequenceOut]:
    found = await service.list_sequences(
        _services(request),
        principal.organization_id,
        agent_id,
        enabled,
        PageRequest.parse(limit, cursor),
    )
    return Page[SequenceOut](
        items=[SequenceOut.of(sequence) for sequence in found.items],
        next_cursor=found.next_cursor,
    )


@router.get("/{sequence_id}", summary="One sequence")
async def get_sequence(
    request: Request, principal: CurrentPrincipal, sequence_id: uuid.UUID
) -> SequenceOut:
    sequence = await service.SEQUENCES.get(
        _services(request), principal.organization_id, sequence_id
    )
    return SequenceOut.of(sequence)


@router.patch(
    "/{sequence_id}",
    summary="Change a sequence (only the fields sent; new steps or stop_on raise the version)",
)
async def update_sequence(
    request: Request, principal: CurrentPrincipal, sequence_id: uuid.UUID, body: SequencePatch
) -> SequenceOut:
    sequence = await service.update_sequence(
        _services(request), principal.organization_id, sequence_id, body
    )
    return SequenceOut.of(sequence)


@router.delete(
    "/{sequence_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Delete a sequence (its open enrollments are stopped)",
)
async def delete_sequence(
    request: Request, principal: CurrentPrincipal, sequence_id: uuid.UUID
) -> Response:
    await service.delete_sequence(_services(request), principal.organization_id, sequence_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{sequence_id}/enable", summary="Enable a sequence")
async def enable_sequence(
    request: Request, principal: CurrentPrincipal, sequence_id: uuid.UUID
) -> SequenceOut:
    sequence = await service.SEQUENCES.set_enabled(
        _services(request), principal.organization_id, sequence_id, True
    )
    return SequenceOut.of(sequence)


@router.post("/{sequence_id}/disable", summary="Disable a sequence (enrollments under way walk on)")
async def disable_sequence(
    request: Request, principal: CurrentPrincipal, sequence_id: uuid.UUID
) -> SequenceOut:
    sequence = await service.SEQUENCES.set_enabled(
        _services(request), principal.organization_id, sequence_id, False
    )
    return SequenceOut.of(sequence)


@router.post(
    "/{sequence_id}/dry-run",
    summary="Evaluate each step on a sample event: what it would do (nothing is done)",
)
async def dry_run_sequence(
    request: Request, principal: CurrentPrincipal, sequence_id: uuid.UUID, body: SequenceDryRunIn
) -> SequenceDryRunOut:
    steps, facts = await service.dry_run_sequence(
        _services(request), principal.organization_id, sequence_id, body.event
    )
    return SequenceDryRunOut(
        steps=[
            StepDryRunOut(
                index=step.index,
                name=step.name,
                matched=step.evaluation.matched,
                trace=step.evaluation.trace,
                would_perform=step.would_perform,
            )
            for step in steps
        ],
        facts=dict(facts.current),
    )


@router.get("/{sequence_id}/enrollments", summary="The sequence's enrollments, newest first")
async def list_enrollments(
    request: Request,
    principal: CurrentPrincipal,
    sequence_id: uuid.UUID,
    enrollment_status: Annotated[EnrollmentStatus | None, Query(alias="status")] = None,
    limit: PageLimit = DEFAULT_LIMIT,
    cursor: PageCursor = None,
) -> Page[EnrollmentOut]:
    found = await service.list_enrollments(
        _services(request),
        principal.organization_id,
        sequence_id,
        enrollment_status,
        PageRequest.parse(limit, cursor),
    )
    return Page[EnrollmentOut](
        items=[EnrollmentOut.of(enrollment) for enrollment in found.items],
        next_cursor=found.next_cursor,
    )


@router.post(
    "/{sequence_id}/enrollments",
    status_code=status.HTTP_201_CREATED,
    summary="Enroll a lead (409 when it walks the sequence already)",
)
async def enroll_lead(
    request: Request, principal: CurrentPrincipal, sequence_id: uuid.UUID, body: EnrollmentIn
) -> EnrollmentOut:
    enrollment = await service.enroll_lead(
        _services(request), principal.organization_id, sequence_id, body
    )
    return EnrollmentOut.of(enrollment)


@enrollments_router.post("/{enrollment_id}/stop", summary="Stop an enrollment")
async def stop_enrollment(
    request: Request, principal: CurrentPrincipal, enrollment_id: uuid.UUID
) -> EnrollmentOut:
    enrollment = await service.stop(_services(request), principal.organization_id, enrollment_id)
    return EnrollmentOut.of(enrollment)


@enrollments_router.post("/{enrollment_id}/pause", summary="Pause an active enrollment")
async def pause_enrollment(
    request: Request, principal: CurrentPrincipal, enrollment_id: uuid.UUID
) -> EnrollmentOut:
    enrollment = await service.pause(_services(request), principal.organization_id, enrollment_id)
    return EnrollmentOut.of(enrollment)


@enrollments_router.post("/{enrollment_id}/resume", summary="Resume a paused enrollment")
async def resume_enrollment(
    request: Request, principal: CurrentPrincipal, enrollment_id: uuid.UUID
) -> EnrollmentOut:
    enrollment = await service.resume(_services(request), principal.organization_id, enrollment_id)
    return EnrollmentOut.of(enrollment)
