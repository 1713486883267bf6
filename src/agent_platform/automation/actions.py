"""What a trigger or a sequence step does: the actions, and their validation when saved.

An action list is stored as JSON exactly as `action_json` gives it, after `parse_actions` has
accepted it: every refusal is a RuleError naming the place ("actions[2].url") so the editor
can point at it. Performing actions is automation.executor's work.
"""

from __future__ import annotations

import json
import uuid
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PlainValidator,
    StringConstraints,
    ValidationError,
)

from agent_platform.automation.engine import RuleError
from agent_platform.automation.events import LEADLESS_EVENTS, EventType
from agent_platform.automation.outbound_webhook import check_webhook_url
from agent_platform.automation.templates import check_template
from agent_platform.crm.records.schemas import MAX_BIGINT, KommoId, Storable
from agent_platform.kit.safe_fetch import UnsafeUrlError

MAX_ACTIONS = 20
MAX_WAIT_MINUTES = 43_200  # 30 days
MAX_TASK_DUE_MINUTES = 525_600  # a year
MAX_PAYLOAD_CHARACTERS = 20_000
MAX_FIELD_CODE_LENGTH = 100


def _trimmed(max_length: int, min_length: int = 1) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=min_length, max_length=max_length)


def _custom_field(value: object) -> int | str:
    """A custom field by id (a number) or code (text); a bool is neither."""
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_BIGINT:
        return value
    if isinstance(value, str) and 1 <= len(value.strip()) <= MAX_FIELD_CODE_LENGTH:
        return value.strip()
    raise ValueError(
        f"a custom field's id (a positive number) or code (1 to {MAX_FIELD_CODE_LENGTH} characters)"
    )


Minutes = Annotated[int, Field(strict=True, ge=1, le=MAX_WAIT_MINUTES)]
Instruction = Annotated[str, _trimmed(2_000), Storable]
MessageTemplate = Annotated[str, _trimmed(4_000), Storable]
NoteTemplate = Annotated[str, _trimmed(10_000), Storable]
FieldValueTemplate = Annotated[str, _trimmed(4_000, min_length=0), Storable]
Tag = Annotated[str, _trimmed(100), Storable]
WebhookUrl = Annotated[str, _trimmed(2_000), Storable]
CustomFieldRef = Annotated[
    int | str, PlainValidator(_custom_field, json_schema_input_type=int | str)
]


class _Action(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # The fields whose text is a template (automation.templates), checked when saved.
    templates: ClassVar[tuple[str, ...]] = ()


class RunAgent(_Action):
    """The agent writes to the lead, told what to do by `instruction`."""

    type: Literal["run_agent"] = "run_agent"
    instruction: Instruction


class SendMessage(_Action):
    type: Literal["send_message"] = "send_message"
    text: MessageTemplate
    templates = ("text",)


class StartSequence(_Action):
    type: Literal["start_sequence"] = "start_sequence"
    sequence_id: uuid.UUID


class StopSequence(_Action):
    """Stops the lead's enrollment in `sequence_id`, or in every sequence when it is None."""

    type: Literal["stop_sequence"] = "stop_sequence"
    sequence_id: uuid.UUID | None = None


class CreateTask(_Action):
    type: Literal["create_task"] = "create_task"
    text: MessageTemplate
    due_in_minutes: Annotated[int, Field(strict=True, ge=1, le=MAX_TASK_DUE_MINUTES)] = 60
    templates = ("text",)


class AddNote(_Action):
    type: Literal["add_note"] = "add_note"
    text: NoteTemplate
    templates = ("text",)


class MoveStage(_Action):
    type: Literal["move_stage"] = "move_stage"
    status_id: KommoId
    pipeline_id: KommoId | None = None


class SetField(_Action):
    """Sets a custom field of the lead; an empty value clears it."""

    type: Literal["set_field"] = "set_field"
    field: CustomFieldRef
    value: FieldValueTemplate
    templates = ("value",)


class AddTag(_Action):
    type: Literal["add_tag"] = "add_tag"
    tag: Tag


class RemoveTag(_Action):
    type: Literal["remove_tag"] = "remove_tag"
    tag: Tag


class Assign(_Action):
    type: Literal["assign"] = "assign"
    user_id: KommoId


class PauseAgent(_Action):
    """The agent stops answering the lead for `minutes`, or until resumed when None."""

    type: Literal["pause_agent"] = "pause_agent"
    minutes: Minutes | None = None


class ResumeAgent(_Action):
    type: Literal["resume_agent"] = "resume_agent"


class CallWebhook(_Action):
    """POSTs `payload` (its string values rendered as templates) to `url`, signed."""

    type: Literal["webhook"] = "webhook"
    url: WebhookUrl
    payload: dict[str, JsonValue] | None = None


class Wait(_Action):
    """Pauses the run for `minutes` before the next action (not in a sequence step: a step
    has its own delay)."""

    type: Literal["wait"] = "wait"
    minutes: Minutes


Action = Annotated[
    RunAgent
    | SendMessage
    | StartSequence
    | StopSequence
    | CreateTask
    | AddNote
    | MoveStage
    | SetField
    | AddTag
    | RemoveTag
    | Assign
    | PauseAgent
    | ResumeAgent
    | CallWebhook
    | Wait,
    Field(discriminator="type"),
]

ACTION_MODELS: dict[str, type[_Action]] = {
    model.model_fields["type"].default: model
    for model in (
        RunAgent,
        SendMessage,
        StartSequence,
        StopSequence,
        CreateTask,
        AddNote,
        MoveStage,
        SetField,
        AddTag,
        RemoveTag,
        Assign,
        PauseAgent,
        ResumeAgent,
        CallWebhook,
        Wait,
    )
}
# The actions that act on a lead: none can be chosen where there is no lead.
LEAD_ACTIONS = frozenset(ACTION_MODELS) - {"webhook", "wait"}


def parse_actions(
    raw: object,
    *,
    event_type: EventType | None,
    in_sequence: bool = False,
    allow_private_networks: bool = False,
    path: str = "actions",
) -> list[Action]:
    """The actions in `raw` (parsed JSON), or a RuleError at the first thing wrong.

    `event_type` is the trigger's (None where any may come: a sequence step), `in_sequence`
    whether the list is a sequence step's.
    """
    if not isinstance(raw, list):
        raise RuleError("must be a list of actions", path)
    if not raw:
        raise RuleError("needs at least one action", path)
    if len(raw) > MAX_ACTIONS:
        raise RuleError(f"at most {MAX_ACTIONS} actions, not {len(raw)}", path)
    return [
        _parse_action(
            item,
            event_type=event_type,
            in_sequence=in_sequence,
            allow_private_networks=allow_private_networks,
            path=f"{path}[{index}]",
        )
        for index, item in enumerate(raw)
    ]


def action_json(action: Action) -> dict[str, Any]:
    """The action as it is stored and shown."""
    return action.model_dump(mode="json")


def _parse_action(
    item: object,
    *,
    event_type: EventType | None,
    in_sequence: bool,
    allow_private_networks: bool,
    path: str,
) -> Action:
    if not isinstance(item, dict):
        raise RuleError('must be an object with a "type"', path)
    action_type = item.get("type")
    model = ACTION_MODELS.get(action_type) if isinstance(action_type, str) else None
    if action_type is None:
        raise RuleError(f'names no "type"; one of: {", ".join(ACTION_MODELS)}', f"{path}.type")
    if model is None:
        raise RuleError(
            f"unknown action type {action_type!r}; one of: {', '.join(ACTION_MODELS)}",
            f"{path}.type",
        )
    if event_type in LEADLESS_EVENTS and action_type in LEAD_ACTIONS:
        raise RuleError(
            f"a {event_type} has no lead: {action_type} acts on one "
            "(only webhook and wait can run here)",
            f"{path}.type",
        )
    if in_sequence and action_type == "wait":
        raise RuleError("a sequence step cannot wait: use the step's delay", f"{path}.type")
    try:
        action = model.model_validate(item)
    except ValidationError as exc:
        raise _rule_error(exc, path) from exc
    for name in model.templates:
        check_template(getattr(action, name), f"{path}.{name}")
    if isinstance(action, CallWebhook):
        _check_webhook(action, allow_private_networks=allow_private_networks, path=path)
    return action  # type: ignore[return-value]  # one of Action's members, by ACTION_MODELS


def _check_webhook(action: CallWebhook, *, allow_private_networks: bool, path: str) -> None:
    try:
        check_webhook_url(action.url, allow_private_networks=allow_private_networks)
    except UnsafeUrlError as exc:
        raise RuleError(exc.message, f"{path}.url") from exc
    if action.payload is None:
        return
    encoded = json.dumps(action.payload, ensure_ascii=False)
    if len(encoded) > MAX_PAYLOAD_CHARACTERS:
        raise RuleError(
            f"at most {MAX_PAYLOAD_CHARACTERS} characters as JSON, not {len(encoded)}",
            f"{path}.payload",
        )
    _check_payload_value(action.payload, f"{path}.payload")


def _check_payload_value(value: JsonValue, path: str) -> None:
    """Every string in the payload is a template; and all of it must be storable as JSONB."""
    if isinstance(value, str):
        _check_storable(value, path)
        check_template(value, path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_payload_value(item, f"{path}[{index}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_storable(key, path)
            _check_payload_value(item, f"{path}.{key}")


def _check_storable(text: str, path: str) -> None:
    if "\x00" in text:
        raise RuleError("text cannot contain NUL characters", path)
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise RuleError("text must be valid Unicode (no lone surrogates)", path) from exc


def _rule_error(exc: ValidationError, path: str) -> RuleError:
    """Pydantic's first complaint, at its place under `path`."""
    first = exc.errors(include_url=False)[0]
    where = "".join(f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"])
    cause = first.get("ctx", {}).get("error")
    message = str(cause) if first["type"] == "value_error" and cause is not None else first["msg"]
    return RuleError(message, f"{path}{where}")
