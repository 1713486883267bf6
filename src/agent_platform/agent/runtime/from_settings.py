"""The runtime's rules, read from an agent's validated settings (agent.schemas)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from agent_platform.agent import schemas
from agent_platform.agent.runtime.handoff import HandoffRules
from agent_platform.agent.runtime.reply_gate import ReplyRules
from agent_platform.agent.runtime.stages import ActiveStage
from agent_platform.agent.runtime.working_hours import OpeningInterval, OutsideHours, WorkingHours


def reply_rules(settings: schemas.AgentSettings) -> ReplyRules:
    return ReplyRules(
        active_stages=tuple(
            ActiveStage(stage.pipeline_id, stage.status_id) for stage in settings.active_stages
        ),
        working_hours=(
            working_hours(settings.working_hours) if settings.working_hours is not None else None
        ),
        stop_words=tuple(settings.stop_words),
        handoff=handoff_rules(settings.handoff),
        takeover_pause_minutes=settings.takeover_pause_minutes,
        debounce_seconds=settings.debounce_seconds,
        max_replies_per_conversation_per_day=settings.max_replies_per_conversation_per_day,
    )


def working_hours(hours: schemas.WorkingHours) -> WorkingHours:
    return WorkingHours(
        timezone=ZoneInfo(hours.timezone),
        weekly={
            day: tuple(OpeningInterval.parse(start, end) for start, end in intervals)
            for day, intervals in hours.weekly.items()
        },
        holidays=frozenset(hours.holidays),
        outside_hours=OutsideHours(hours.outside_hours),
        out_of_hours_message=hours.out_of_hours_message,
    )


def handoff_rules(handoff: schemas.Handoff) -> HandoffRules:
    return HandoffRules(
        keywords=tuple(handoff.keywords),
        max_turns=handoff.max_turns,
        on_llm_request=handoff.on_llm_request,
        max_consecutive_errors=handoff.max_consecutive_errors,
        responsible_user_id=handoff.responsible_user_id,
        task_text=handoff.task_text,
        pause_minutes=handoff.pause_minutes,
    )
