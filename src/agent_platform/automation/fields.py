"""The fields a condition can test, their types, and the operators each type accepts.

A field's name is also its fact key (automation.facts) and its template variable
("{{ lead.name }}"), so the visual editor, the engine and the templates share one catalog.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class FieldType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    BOOLEAN = "boolean"
    LIST = "list"
    ANY = "any"


@dataclass(frozen=True)
class FieldSpec:
    name: str
    type: FieldType
    group: str
    description: str


# "lead.custom_fields.<id or code>": Kommo custom fields hold any kind of value.
CUSTOM_FIELD_PREFIX = "lead.custom_fields."

# In the order the editor lists them and error messages name them.
ALL_OPERATORS: tuple[str, ...] = (
    "equals",
    "not_equals",
    "contains",
    "not_contains",
    "starts_with",
    "matches",
    "in",
    "not_in",
    "gt",
    "gte",
    "lt",
    "lte",
    "between",
    "is_empty",
    "is_not_empty",
    "changed_to",
    "changed_from",
)

OPERATORS: dict[FieldType, frozenset[str]] = {
    FieldType.STRING: frozenset(
        {
            "equals",
            "not_equals",
            "contains",
            "not_contains",
            "starts_with",
            "matches",
            "in",
            "not_in",
            "is_empty",
            "is_not_empty",
            "changed_to",
            "changed_from",
        }
    ),
    FieldType.NUMBER: frozenset(
        {
            "equals",
            "not_equals",
            "gt",
            "gte",
            "lt",
            "lte",
            "between",
            "in",
            "not_in",
            "is_empty",
            "is_not_empty",
            "changed_to",
            "changed_from",
        }
    ),
    FieldType.BOOLEAN: frozenset({"equals", "not_equals", "is_empty", "is_not_empty"}),
    FieldType.LIST: frozenset({"contains", "not_contains", "is_empty", "is_not_empty"}),
    FieldType.ANY: frozenset(ALL_OPERATORS),
}


def _spec(name: str, type_: FieldType, description: str) -> FieldSpec:
    return FieldSpec(name=name, type=type_, group=name.split(".", 1)[0], description=description)


_S, _N, _B, _L = FieldType.STRING, FieldType.NUMBER, FieldType.BOOLEAN, FieldType.LIST

FIELDS: dict[str, FieldSpec] = {
    spec.name: spec
    for spec in (
        _spec("event.type", _S, "What happened (lead_status_changed, message_incoming, …)"),
        _spec("event.from_status_id", _N, "The stage the lead left"),
        _spec("event.to_status_id", _N, "The stage the lead entered"),
        _spec("event.from_pipeline_id", _N, "The pipeline the lead left"),
        _spec("event.to_pipeline_id", _N, "The pipeline the lead entered"),
        _spec("event.from_user_id", _N, "The previous responsible user"),
        _spec("event.to_user_id", _N, "The new responsible user"),
        _spec("event.tag", _S, "The tag that was added"),
        _spec("event.field", _S, "The changed custom field's code, or its id when it has none"),
        _spec("event.minutes", _N, "How many minutes of silence"),
        _spec("event.task_text", _S, "The task's text"),
        _spec("lead.id", _N, "The lead's id"),
        _spec("lead.price", _N, "The lead's budget"),
        _spec("lead.status_id", _N, "The lead's stage"),
        _spec("lead.pipeline_id", _N, "The lead's pipeline"),
        _spec("lead.responsible_user_id", _N, "The lead's responsible user"),
        _spec("lead.name", _S, "The lead's name"),
        _spec("lead.tags", _L, "The lead's tags"),
        _spec("contact.id", _N, "The main contact's id"),
        _spec("contact.name", _S, "The main contact's name"),
        _spec("contact.phone", _S, "The main contact's phone"),
        _spec("contact.email", _S, "The main contact's email"),
        _spec("message.text", _S, "The message's text"),
        _spec("message.channel", _S, "The channel the message came through"),
        _spec("time.weekday", _N, "Day of the week, 1 = Monday … 7 = Sunday, in your time zone"),
        _spec("time.hour", _N, "Hour of the day, 0–23, in your time zone"),
        _spec("time.within_working_hours", _B, "Whether the agent's working hours are open now"),
        _spec("conversation.turns", _N, "How many messages the conversation has"),
        _spec(
            "conversation.minutes_since_last_reply",
            _N,
            "Minutes since the last message in the conversation",
        ),
    )
}


def field_spec(name: str) -> FieldSpec | None:
    """The field called `name`, custom fields ("lead.custom_fields.<id or code>") included."""
    known = FIELDS.get(name)
    if known is not None:
        return known
    if name.startswith(CUSTOM_FIELD_PREFIX) and name[len(CUSTOM_FIELD_PREFIX) :].strip():
        return FieldSpec(
            name=name,
            type=FieldType.ANY,
            group="lead",
            description="A custom field of the lead, by id or code",
        )
    return None
