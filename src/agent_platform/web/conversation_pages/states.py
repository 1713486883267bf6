"""Whether the agent answers in a conversation, as the conversations page names it.

The reply gate (agent.runtime.reply_gate) decides per message; this is the page's summary of
the columns the gate reads: stopped by a stop word, paused by a person or an automation,
handed off by the agent, or answering. A handoff lasts until `agent_paused_until`, or, when
no end was written, until someone resumes the agent. A manager's own messages silence the
agent for a while too: the conversation page shows when a manager last wrote.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import ColumnElement, and_, func, not_, or_

from agent_platform.agent.conversation_control import PAUSED_BY_API
from agent_platform.automation.executor import PAUSED_BY_AUTOMATION
from agent_platform.conversation.models import Conversation

TAKEN_OVER_IN_DASHBOARD = "taken over in the dashboard"

# Handoff reasons that mean a person (or their automation) silenced the agent, not the agent
# giving the conversation away.
PAUSE_REASONS = frozenset({PAUSED_BY_API, PAUSED_BY_AUTOMATION, TAKEN_OVER_IN_DASHBOARD})


class AgentState(StrEnum):
    ANSWERING = "answering"
    PAUSED = "paused"
    HANDED_OFF = "handed_off"
    STOPPED = "stopped"


def state_of(conversation: Conversation, now: datetime) -> AgentState:
    if conversation.stopped_at is not None:
        return AgentState.STOPPED
    silenced = conversation.handed_off_at is not None and (
        conversation.agent_paused_until is None or conversation.agent_paused_until > now
    )
    if not silenced:
        return AgentState.ANSWERING
    if conversation.handoff_reason in PAUSE_REASONS:
        return AgentState.PAUSED
    return AgentState.HANDED_OFF


def state_condition(state: AgentState) -> ColumnElement[bool]:
    """The SQL twin of state_of, for filtering a list by state."""
    stopped = Conversation.stopped_at.is_not(None)
    silenced = and_(
        Conversation.handed_off_at.is_not(None),
        or_(
            Conversation.agent_paused_until.is_(None), Conversation.agent_paused_until > func.now()
        ),
    )
    by_person = func.coalesce(Conversation.handoff_reason, "").in_(sorted(PAUSE_REASONS))
    conditions: dict[AgentState, ColumnElement[bool]] = {
        AgentState.STOPPED: stopped,
        AgentState.ANSWERING: and_(not_(stopped), not_(silenced)),
        AgentState.PAUSED: and_(not_(stopped), silenced, by_person),
        AgentState.HANDED_OFF: and_(not_(stopped), silenced, not_(by_person)),
    }
    return conditions[state]
