"""Running the model's tool calls: only the agent's allowed tools, with checked arguments,
each through the CRM port; whatever goes wrong becomes a result the model reads, never a
crash of the turn.

Exactly once under job retries. The turn (agent/turn.py) records the model's answer with
its tool calls before running any of them, and each call's result is recorded as a "tool"
message carrying the call's id right after the call ran. A retried job rebuilds the turn
from those records: it does not ask the model again for calls already decided, and a call
that has a result is not run again (`run_tool_calls` skips it and reuses the result). What
remains is the moment between a call's effect and its record: moving a stage, setting a
field and adding a tag are states, so running them again changes nothing; a task is stored
by crm/records in a transaction of its own, so a crash in that moment (after its commit,
before the result's) leaves a retry to create it a second time.

"handoff" is a decision for the caller (it assigns, creates the handover task, pauses the
agent): here it is only recorded and returned. "schedule_follow_up" defers the follow-up job
(agent.follow_up) in the transaction that records its result: the call has a result exactly
when its job exists, so a retried turn never schedules it twice.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.agent.runtime.tools import HANDOFF_TOOL, tool_definitions
from agent_platform.agent.tool_arguments import argument_problems
from agent_platform.conversation import queries
from agent_platform.conversation.models import Message
from agent_platform.crm.ports import CrmActionError, CrmPort
from agent_platform.db.session import transaction
from agent_platform.llm.tools import ToolCall
from agent_platform.queue.registry import JOBS, defer_in_transaction
from agent_platform.services import Services

log = structlog.get_logger("agent.tools")

DEFAULT_TASK_DUE_HOURS = 24
FOLLOW_UP_TOOL = "schedule_follow_up"
FOLLOW_UP_JOB = "send_follow_up"
"""The follow-up job's name (agent.follow_up), named here so that scheduling it needs no import
of the module that runs it: that one imports the reply flow, which imports this one."""


@dataclass(frozen=True)
class ToolScope:
    """Where the calls act: the conversation they are recorded in and the lead they change."""

    organization_id: uuid.UUID
    conversation_id: uuid.UUID
    allowed: frozenset[str]
    # None on the chat API: no CRM behind the conversation, so its tools are not offered.
    crm: CrmPort | None
    lead_id: int | None
    # False for an evaluation: its conversation is thrown away, so no follow-up may be queued.
    schedules_follow_ups: bool = True

    @property
    def has_crm(self) -> bool:
        return self.crm is not None and self.lead_id is not None


@dataclass(frozen=True)
class ToolOutcome:
    call: ToolCall
    result: dict[str, Any]

    @property
    def handoff_reason(self) -> str | None:
        reason = self.result.get("handoff_reason")
        return reason if isinstance(reason, str) else None

    @property
    def follow_up_at(self) -> datetime | None:
        """When the follow-up this call scheduled is due; None for any other call."""
        due = self.result.get("follow_up_at")
        return datetime.fromisoformat(due) if isinstance(due, str) else None


class _RefusedError(Exception):
    """A call the model has to correct: its message is the result the model reads."""


async def run_tool_calls(
    services: Services, scope: ToolScope, calls: Sequence[ToolCall]
) -> list[ToolOutcome]:
    async with transaction(services.sessions) as session:
        done = await queries.tool_results(session, scope.conversation_id, [c.id for c in calls])
    outcomes = []
    for call in calls:
        if call.id in done:
            outcomes.append(ToolOutcome(call, json.loads(done[call.id])))
            continue
        outcome = ToolOutcome(call, await _run(scope, call))
        async with transaction(services.sessions) as session:
            await queries.add_messages(session, [_tool_message(scope, outcome)])
            if outcome.follow_up_at is not None and scope.schedules_follow_ups:
                await _defer_follow_up(session, services, scope, call, outcome.follow_up_at)
        outcomes.append(outcome)
    return outcomes


def offered_tools(allowed: Collection[str], *, has_crm: bool) -> list[dict[str, Any]]:
    """The definitions the model is shown: without a CRM, only the handoff is any use."""
    usable = [name for name in allowed if has_crm or name == HANDOFF_TOOL]
    return tool_definitions(usable)


async def _run(scope: ToolScope, call: ToolCall) -> dict[str, Any]:
    try:
        arguments = _checked_arguments(scope, call)
        if call.name == HANDOFF_TOOL:
            reason = str(arguments.get("reason") or "The model asked for a person.")
            return {"ok": True, "handoff_reason": reason}
        if call.name == FOLLOW_UP_TOOL:
            due = datetime.now(UTC) + timedelta(hours=arguments["delay_hours"])
            return {"ok": True, "follow_up_at": due.isoformat(), "topic": arguments["topic"]}
        await _change_crm(scope, call.name, arguments)
    except (_RefusedError, CrmActionError) as exc:
        log.info("tool_call_refused", tool=call.name, reason=str(exc))
        return {"ok": False, "error": str(exc)}
    log.info("tool_call_done", tool=call.name)
    return {"ok": True}


def _checked_arguments(scope: ToolScope, call: ToolCall) -> dict[str, Any]:
    offered = offered_tools(scope.allowed, has_crm=scope.has_crm)
    schemas = {tool["function"]["name"]: tool["function"]["parameters"] for tool in offered}
    if call.name not in schemas:
        raise _RefusedError(f"The tool {call.name!r} is not available to you.")
    problems = argument_problems(schemas[call.name], call.arguments)
    if problems:
        raise _RefusedError("Invalid arguments: " + "; ".join(problems) + ".")
    return call.arguments


async def _change_crm(scope: ToolScope, name: str, arguments: dict[str, Any]) -> None:
    crm, lead_id = scope.crm, scope.lead_id
    # _checked_arguments lets CRM tools through only where the scope has a CRM and a lead.
    assert crm is not None, "CRM tools are offered only with a CRM"
    assert lead_id is not None, "CRM tools are offered only with a lead"
    if name == "create_task":
        hours = arguments.get("due_in_hours", DEFAULT_TASK_DUE_HOURS)
        await crm.create_task(
            lead_id, arguments["text"], datetime.now(UTC) + timedelta(hours=hours)
        )
    elif name == "move_stage":
        await crm.move_stage(lead_id, arguments["status_id"])
    elif name == "set_custom_field":
        await crm.set_custom_field(lead_id, arguments["field_id"], arguments["value"])
    elif name == "add_tag":
        await crm.add_tag(lead_id, arguments["tag"])
    else:
        raise _RefusedError(f"The tool {name!r} cannot be run here.")


async def _defer_follow_up(
    session: AsyncSession,
    services: Services,
    scope: ToolScope,
    call: ToolCall,
    due: datetime,
) -> None:
    await defer_in_transaction(
        session,
        services.queue,
        JOBS[FOLLOW_UP_JOB],
        services.settings.job_queue_name,
        schedule_at=due,
        organization_id=str(scope.organization_id),
        conversation_id=str(scope.conversation_id),
        call_id=call.id,
        topic=call.arguments["topic"],
        scheduled_at=datetime.now(UTC).isoformat(),
    )


def _tool_message(scope: ToolScope, outcome: ToolOutcome) -> Message:
    return Message(
        organization_id=scope.organization_id,
        conversation_id=scope.conversation_id,
        role="tool",
        content=json.dumps(outcome.result, ensure_ascii=False),
        tool_call_id=outcome.call.id,
    )
