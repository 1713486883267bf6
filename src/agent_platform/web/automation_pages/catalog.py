"""What the editor's script offers to pick from: fields and their operators
(automation.fields), action types and their inputs (automation.actions), the organization's
saved rules and sequences, and the words it shows, in the reader's language."""

from __future__ import annotations

from typing import Any

from agent_platform.automation.actions import ACTION_MODELS
from agent_platform.automation.fields import (
    ALL_OPERATORS,
    CUSTOM_FIELD_PREFIX,
    FIELDS,
    OPERATORS,
    FieldType,
)
from agent_platform.automation.models import AutomationRule, Sequence
from agent_platform.web.i18n import Translate

# How the editor asks for each parameter of an action; any other is a line of text.
ACTION_INPUTS = {
    "instruction": "textarea",
    "text": "textarea",
    "sequence_id": "sequence",
    "due_in_minutes": "number",
    "status_id": "number",
    "pipeline_id": "number",
    "field": "field_ref",
    "user_id": "number",
    "minutes": "number",
    "payload": "json",
}
# The words of the editor's own controls, by their keys under automation.editor.
EDITOR_WORDS = (
    "all",
    "any",
    "not",
    "add_condition",
    "add_group",
    "add_not",
    "add_rule",
    "add_action",
    "remove",
    "field",
    "operator",
    "value",
    "value_low",
    "value_high",
    "list_hint",
    "custom_field",
    "custom_field_code",
    "saved_rule",
    "action",
    "no_sequence",
    "yes",
    "no",
    "always",
)


def editor_catalog(
    t: Translate, rules: list[AutomationRule], sequences: list[Sequence]
) -> dict[str, Any]:
    return {
        "fields": [
            {
                "name": spec.name,
                "type": spec.type.value,
                "group": spec.group,
                "label": t(f"automation.field.{spec.name}"),
            }
            for spec in FIELDS.values()
        ],
        "groups": {
            group: t(f"automation.field_group.{group}")
            for group in dict.fromkeys(spec.group for spec in FIELDS.values())
        },
        "operators": {
            kind.value: [operator for operator in ALL_OPERATORS if operator in OPERATORS[kind]]
            for kind in FieldType
        },
        "operator_labels": {
            operator: t(f"automation.operator.{operator}") for operator in ALL_OPERATORS
        },
        "custom_field_prefix": CUSTOM_FIELD_PREFIX,
        "actions": {
            action_type: {
                "label": t(f"automation.action.{action_type}"),
                "fields": [
                    {
                        "name": name,
                        "input": ACTION_INPUTS.get(name, "text"),
                        "required": info.is_required(),
                        "label": t(f"automation.action_field.{name}"),
                    }
                    for name, info in model.model_fields.items()
                    if name != "type"
                ],
            }
            for action_type, model in ACTION_MODELS.items()
        },
        "rules": [{"id": str(rule.id), "name": rule.name} for rule in rules],
        "sequences": [{"id": str(sequence.id), "name": sequence.name} for sequence in sequences],
        "words": {word: t(f"automation.editor.{word}") for word in EDITOR_WORDS},
    }
