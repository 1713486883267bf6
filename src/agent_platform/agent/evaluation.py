"""Evaluation before go-live: scripted conversations run against a version of an agent, each
checked against its expectations (agent.eval_dataset, agent.eval_expectations).

Each case runs as production would answer it, message by message: the reply gate decides at
the case's time (stage, stop words, handoff rules, working hours, daily cap), and when it
lets the agent answer, the agent's turn (agent.turn) writes the reply with the real model
and knowledge base, its CRM tools going to a recording port (agent.eval_port) so no CRM is
touched. The conversation is thrown away afterwards (agent.eval_conversations).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from pydantic import BaseModel

from agent_platform.agent import repository
from agent_platform.agent.eval_conversations import (
    add_message,
    discard_conversation,
    open_conversation,
)
from agent_platform.agent.eval_dataset import EvalCase
from agent_platform.agent.eval_expectations import CaseOutcome, unmet_expectations
from agent_platform.agent.eval_port import RecordingCrmPort
from agent_platform.agent.management import (
    AgentNotFoundError,
    AnsweringVersion,
    answering_version,
)
from agent_platform.agent.models import AgentStatus
from agent_platform.agent.runtime.debounce import PendingMessage
from agent_platform.agent.runtime.decisions import (
    Answer,
    HandOff,
    ReplyDecision,
    SendOutOfHoursMessage,
    SilenceReason,
    StaySilent,
    WaitUntil,
)
from agent_platform.agent.runtime.from_settings import reply_rules
from agent_platform.agent.runtime.reply_gate import (
    ConversationState,
    CustomerMessage,
    ReplyRules,
    decide_reply,
)
from agent_platform.agent.runtime.stages import LeadStage
from agent_platform.agent.turn import TurnRequest, generate
from agent_platform.db.session import tenant_transaction, transaction
from agent_platform.services import Services


class EvalStep(BaseModel):
    """What the agent did with one customer message."""

    message: str
    outcome: str
    """reply, out_of_hours_message, handoff, silent, or later (after the working hours)."""
    reason: str | None
    reply: str | None


class CaseResult(BaseModel):
    name: str
    passed: bool
    failures: list[str]
    replies: list[str]
    handoff: bool
    silent: bool
    tools_called: list[str]
    crm_actions: list[dict[str, object]]
    steps: list[EvalStep]


class EvalReport(BaseModel):
    agent_id: uuid.UUID
    version: int
    passed: int
    failed: int
    cases: list[CaseResult]


@dataclass
class _CaseRun:
    """One case in progress: the gate's view of the conversation and what was said."""

    at: datetime
    state: ConversationState
    port: RecordingCrmPort
    steps: list[EvalStep] = field(default_factory=list)
    tools_called: list[str] = field(default_factory=list)
    handed_off: bool = False


async def organization_of_agent(services: Services, agent_id: uuid.UUID) -> uuid.UUID:
    """For the CLI, whose operator names an agent without an organization."""
    async with transaction(services.sessions) as session:
        agent = await repository.get_agent(session, agent_id)
    if agent is None:
        raise AgentNotFoundError(agent_id)
    return agent.organization_id


async def evaluate(
    services: Services,
    organization_id: uuid.UUID,
    agent_id: uuid.UUID,
    cases: Sequence[EvalCase],
    *,
    version: int | None = None,
    on_case_done: Callable[[CaseResult], None] | None = None,
) -> EvalReport:
    """Run `cases` against version `version` of the agent (none: the published one)."""
    chosen = await _chosen_version(services, organization_id, agent_id, version)
    # Each scripted message is a turn of its own, not part of a burst still being typed:
    # debouncing would only make every message but the last one wait.
    rules = replace(reply_rules(chosen.settings), debounce_seconds=0)
    results = []
    for case in cases:
        result = await _run_case(services, organization_id, agent_id, chosen, rules, case)
        results.append(result)
        if on_case_done is not None:
            on_case_done(result)
    passed = sum(result.passed for result in results)
    return EvalReport(
        agent_id=agent_id,
        version=chosen.number,
        passed=passed,
        failed=len(results) - passed,
        cases=results,
    )


async def _chosen_version(
    services: Services, organization_id: uuid.UUID, agent_id: uuid.UUID, number: int | None
) -> AnsweringVersion:
    async with tenant_transaction(services.sessions, organization_id) as session:
        record = await repository.agent_record(session, organization_id, agent_id)
        if record is None or record.agent.status == AgentStatus.ARCHIVED.value:
            raise AgentNotFoundError(agent_id)
        return await answering_version(session, record, number)


async def _run_case(
    services: Services,
    organization_id: uuid.UUID,
    agent_id: uuid.UUID,
    version: AnsweringVersion,
    rules: ReplyRules,
    case: EvalCase,
) -> CaseResult:
    lead = case.lead
    stage = (
        LeadStage(lead.pipeline_id, lead.status_id)
        if lead.pipeline_id is not None and lead.status_id is not None
        else None
    )
    run = _CaseRun(
        at=case.at or datetime.now(UTC),
        state=ConversationState(lead_stage=stage),
        port=RecordingCrmPort(lead),
    )
    conversation_id = await open_conversation(services, organization_id, agent_id)
    try:
        for index, text in enumerate(case.messages):
            await add_message(services, organization_id, conversation_id, "user", text)
            request = TurnRequest(
                organization_id=organization_id,
                conversation_id=conversation_id,
                agent_id=agent_id,
                agent=version.settings,
                version_id=version.version_id,
                question=text,
                crm=run.port,
                lead_id=lead.id,
                schedules_follow_ups=False,
            )
            await _answer(services, run, rules, request, str(index))
    finally:
        await discard_conversation(services, organization_id, conversation_id)
    return _case_result(case, run)


async def _answer(
    services: Services,
    run: _CaseRun,
    rules: ReplyRules,
    request: TurnRequest,
    message_id: str,
) -> None:
    """One customer message through the gate and, when it lets the agent answer, the turn."""
    state = replace(run.state, customer_turns=run.state.customer_turns + 1)
    text = request.question
    decision = decide_reply(
        rules,
        state,
        CustomerMessage(message_id, text),
        [PendingMessage(message_id, run.at)],
        run.at,
    )
    run.state = state
    if isinstance(decision, Answer):
        result = await generate(services, request)
        run.tools_called += [
            outcome.call.name for outcome in result.tool_calls if outcome.result.get("ok")
        ]
        if result.text is None:
            _hand_off(run, text, result.handoff_reason)
        else:
            await _say(services, run, request, "reply", result.text)
            run.state = replace(run.state, replies_today=run.state.replies_today + 1)
    elif isinstance(decision, HandOff):
        _hand_off(run, text, decision.reason.value)
    elif isinstance(decision, SendOutOfHoursMessage):
        await _say(services, run, request, "out_of_hours_message", decision.text)
        run.state = replace(run.state, out_of_hours_message_sent_at=run.at)
    else:
        if isinstance(decision, StaySilent) and decision.reason is SilenceReason.STOP_WORD:
            run.state = replace(run.state, stopped=True)
        run.steps.append(_quiet_step(decision, text))


def _quiet_step(decision: ReplyDecision, text: str) -> EvalStep:
    if isinstance(decision, WaitUntil):
        reason = f"answers at {decision.at.isoformat()}"
        return EvalStep(message=text, outcome="later", reason=reason, reply=None)
    assert isinstance(decision, StaySilent), "the other decisions say something"
    return EvalStep(message=text, outcome="silent", reason=decision.reason.value, reply=None)


async def _say(
    services: Services, run: _CaseRun, request: TurnRequest, outcome: str, reply: str
) -> None:
    await add_message(
        services, request.organization_id, request.conversation_id, "assistant", reply
    )
    run.steps.append(EvalStep(message=request.question, outcome=outcome, reason=None, reply=reply))


def _hand_off(run: _CaseRun, text: str, reason: str | None) -> None:
    run.handed_off = True
    # The pause the gate then applies keeps the agent quiet for the rest of the case.
    run.state = replace(run.state, handed_off_at=run.at)
    run.steps.append(EvalStep(message=text, outcome="handoff", reason=reason, reply=None))


def _case_result(case: EvalCase, run: _CaseRun) -> CaseResult:
    outcome = CaseOutcome(
        replies=tuple(step.reply for step in run.steps if step.reply is not None),
        handed_off=run.handed_off,
        tools_called=tuple(run.tools_called),
    )
    failures = unmet_expectations(case.expect, outcome)
    return CaseResult(
        name=case.name,
        passed=not failures,
        failures=failures,
        replies=list(outcome.replies),
        handoff=outcome.handed_off,
        silent=outcome.silent,
        tools_called=list(outcome.tools_called),
        crm_actions=[
            {"name": action.name, "arguments": action.arguments} for action in run.port.actions
        ],
        steps=run.steps,
    )
