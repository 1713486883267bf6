"""An agent's settings as the API takes and gives them, validated; and the API's other shapes.

`AgentSettings` is also what a version stores (its JSON snapshot) and what the reply flow
answers with (agent.published); it imports nothing but Pydantic, so the pure runtime may use
it too. Every list and text has a limit: settings are put in front of a language model on
every turn and kept in every version.
"""

from __future__ import annotations

import functools
import re
import uuid
import zoneinfo
from datetime import date, datetime
from itertools import pairwise
from typing import Annotated, Literal, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
OutsideHours = Literal["answer_later", "out_of_hours_message", "silent"]
Tool = Literal[
    "create_task", "move_stage", "set_custom_field", "add_tag", "handoff", "schedule_follow_up"
]
CLOCK_PATTERN = r"^(?:(?:[01]\d|2[0-3]):[0-5]\d|24:00)$"
LANGUAGE_PATTERN = r"^(?:auto|[A-Za-z]{2,3}(?:-[A-Za-z0-9]{2,8})*)$"


def _time_of_day(value: str) -> str:
    if not re.fullmatch(CLOCK_PATTERN, value):
        raise ValueError(f"{value!r} is not a time of day as 'HH:MM' from '00:00' to '24:00'")
    return value


def _language_tag(value: str) -> str:
    if not re.fullmatch(LANGUAGE_PATTERN, value):
        raise ValueError(f"{value!r} is neither 'auto' nor a language tag such as 'en' or 'pt-BR'")
    return value


# "HH:MM" on a 24-hour clock; "24:00" ends a day. Zero-padded and of one width, so two of
# them compare as strings in the order of the times they name.
Clock = Annotated[
    str,
    AfterValidator(_time_of_day),
    WithJsonSchema({"type": "string", "pattern": CLOCK_PATTERN, "examples": ["09:00"]}),
]
Interval = tuple[Clock, Clock]
# A word or phrase matched in the customer's messages (stop words, handoff keywords).
Phrase = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ModelName = Name  # any provider's model id, bounded as a name is
# "auto" (the customer's language) or a BCP-47 tag: "en", "ru", "pt-BR", "zh-Hant".
Language = Annotated[
    str,
    StringConstraints(max_length=35),
    AfterValidator(_language_tag),
    WithJsonSchema({"type": "string", "pattern": LANGUAGE_PATTERN, "maxLength": 35}),
]
Note = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500)]
PositiveInt = Annotated[int, Field(ge=1)]
T = TypeVar("T")


@functools.cache
def _time_zone_names() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def _known_time_zone(name: str) -> str:
    if name not in _time_zone_names():
        raise ValueError(f"unknown time zone {name!r}; use an IANA name such as 'Europe/Moscow'")
    return name


def _ordered_day(intervals: list[Interval]) -> list[Interval]:
    """A day's intervals in order, each non-empty and none overlapping the next."""
    ordered = sorted(intervals)
    for start, end in ordered:
        if end <= start:
            raise ValueError(f"{start}–{end} does not end after it starts")
    for (start, end), (next_start, next_end) in pairwise(ordered):
        if next_start < end:
            raise ValueError(f"{start}–{end} overlaps {next_start}–{next_end}")
    return ordered


def _distinct(items: list[T]) -> list[T]:
    if len(set(items)) != len(items):
        raise ValueError("each item may be listed only once")
    return items


DaySchedule = Annotated[list[Interval], Field(max_length=12), AfterValidator(_ordered_day)]


class WorkingHours(BaseModel):
    """When the agent answers. A day left out of `weekly` is closed all day."""

    model_config = ConfigDict(extra="forbid")

    timezone: Annotated[str, AfterValidator(_known_time_zone)] = Field(
        description="An IANA time zone, e.g. 'Europe/Moscow'."
    )
    weekly: dict[Weekday, DaySchedule] = Field(
        default_factory=dict,
        description='Open intervals per day, e.g. {"mon": [["09:00", "18:00"]]}; '
        '"24:00" ends a day.',
    )
    holidays: list[date] = Field(default_factory=list, max_length=366)
    outside_hours: OutsideHours = "answer_later"
    out_of_hours_message: str | None = Field(default=None, min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _message_when_it_is_sent(self) -> Self:
        if self.outside_hours == "out_of_hours_message" and not self.out_of_hours_message:
            raise ValueError("outside_hours 'out_of_hours_message' needs out_of_hours_message")
        return self


class Handoff(BaseModel):
    """When the agent hands a lead over to a person, and what it does then."""

    model_config = ConfigDict(extra="forbid")

    keywords: list[Phrase] = Field(default_factory=list, max_length=200)
    max_turns: int | None = Field(default=None, ge=1, le=1000)
    on_llm_request: bool = True
    max_consecutive_errors: int | None = Field(default=None, ge=1, le=100)
    responsible_user_id: int | None = Field(
        default=None, ge=1, description="The Kommo user the lead is assigned to."
    )
    task_text: str = Field(
        default="The AI agent handed this conversation over: please take it from here.",
        min_length=1,
        max_length=1000,
    )
    pause_minutes: int | None = Field(
        default=None,
        ge=1,
        le=525_600,
        description="How long the agent stays quiet; null: until resumed.",
    )


class ActiveStage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    pipeline_id: PositiveInt
    status_id: int | None = Field(default=None, ge=1, description="null: the whole pipeline.")


class _SettingsWithDefaults(BaseModel):
    """Every setting but the two an agent cannot do without (see AgentSettings)."""

    model_config = ConfigDict(extra="forbid")

    description: str = Field(default="", max_length=2000)
    instructions: str = Field(default="", max_length=50_000)
    fallback_models: list[ModelName] = Field(default_factory=list, max_length=5)
    temperature: float = Field(default=0.3, ge=0, le=2)
    max_tokens: int | None = Field(
        default=None, ge=1, le=200_000, description="null: the model's own limit."
    )
    language: Language = "auto"
    tone: str = Field(default="", max_length=200)
    working_hours: WorkingHours | None = Field(default=None, description="null: always open.")
    stop_words: list[Phrase] = Field(default_factory=list, max_length=200)
    handoff: Handoff = Field(default_factory=Handoff)
    takeover_pause_minutes: int = Field(default=60, ge=0, le=43_200)
    debounce_seconds: int = Field(default=0, ge=0, le=300)
    max_replies_per_conversation_per_day: int | None = Field(default=None, ge=1, le=1000)
    # Off unless chosen: each one changes the team's CRM.
    tools: Annotated[list[Tool], AfterValidator(_distinct)] = Field(default_factory=list)
    active_stages: Annotated[list[ActiveStage], AfterValidator(_distinct)] = Field(
        default_factory=list, max_length=200, description="Empty: every stage."
    )
    lead_fields: Annotated[list[PositiveInt], AfterValidator(_distinct)] = Field(
        default_factory=list,
        max_length=50,
        description="The lead's custom fields (by id) the model is shown, as data.",
    )


class AgentSettings(_SettingsWithDefaults):
    """Everything that decides how an agent answers. Each save is kept as a version."""

    name: Name
    model: ModelName = Field(description="Any model name the configured provider knows.")


SETTINGS_FIELDS = frozenset(AgentSettings.model_fields)


class AgentCreate(AgentSettings):
    note: Note | None = Field(default=None, description="Why: kept with version 1.")


class AgentPatch(_SettingsWithDefaults):
    """Only the fields sent change (nested objects are replaced whole); the rest keep their
    values. A change of settings saves a new version; `status` alone does not."""

    name: Name | None = None
    model: ModelName | None = None
    status: Literal["active", "paused"] | None = Field(
        default=None, description="'active' needs a published version."
    )
    note: Note | None = Field(default=None, description="Why: kept with the new version.")

    @model_validator(mode="after")
    def _changes_something(self) -> Self:
        sent = self.model_fields_set
        # null is how a nullable setting is cleared; these three have no such state.
        cleared = sorted(
            name
            for name in ("name", "model", "status")
            if name in sent and getattr(self, name) is None
        )
        if cleared:
            raise ValueError(f"{', '.join(cleared)} cannot be null")
        if not sent & (SETTINGS_FIELDS | {"status"}):
            raise ValueError("send at least one setting or a status")
        if "note" in sent and not sent & SETTINGS_FIELDS:
            raise ValueError("a note describes the version a settings change saves")
        return self

    def settings_changes(self) -> dict[str, object]:
        """The settings sent, as they are stored (JSON values)."""
        return self.model_dump(mode="json", exclude_unset=True, include=set(SETTINGS_FIELDS))


class AgentOut(AgentSettings):
    """An agent: the settings it answers with (its published version's; before the first
    publish, its latest save), and where its versions stand."""

    id: uuid.UUID
    status: str = Field(description="draft, active, paused or archived.")
    published_version: int | None = Field(description="The version answering customers.")
    latest_version: int | None = Field(description="The newest saved version.")
    published_at: datetime | None
    published_by: str | None
    created_at: datetime
    updated_at: datetime


class VersionChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: PositiveInt


class VersionSummary(BaseModel):
    number: int
    created_at: datetime
    created_by: str | None = Field(description="'api_key:<id>', or null for the platform.")
    note: str | None
    published: bool


class VersionOut(VersionSummary):
    settings: AgentSettings
