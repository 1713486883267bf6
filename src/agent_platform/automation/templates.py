"""Text with variables, for messages, notes, tasks, field values and webhook payloads.

"Hello, {{ lead.name }}!": a variable is a field of the catalog (automation.fields), custom
fields included ("{{ lead.custom_fields.UTM_SOURCE }}"), and renders as that fact's value.
Templates are checked when an action is saved, so an unknown variable is an error the admin
sees at once, not an empty gap in a message a lead reads later.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from typing import Any

from agent_platform.automation.engine import RuleError
from agent_platform.automation.fields import FIELDS, field_spec

# A variable: two braces, a name without braces, two braces; spaces inside are allowed.
_VARIABLE = re.compile(r"\{\{([^{}]*)\}\}")


def template_variables(template: str) -> frozenset[str]:
    """The names of the variables `template` uses, known or not."""
    return frozenset(match.group(1).strip() for match in _VARIABLE.finditer(template))


def check_template(template: str, path: str) -> None:
    """Refuse (RuleError at `path`) braces that open or close no variable, and unknown names."""
    for match in _VARIABLE.finditer(template):
        name = match.group(1).strip()
        if not name:
            raise RuleError("an empty variable {{ }}: put a field's name between the braces", path)
        if field_spec(name) is None:
            raise RuleError(f"unknown variable {{{{ {name} }}}}{_suggestion(name)}", path)
    leftover = _VARIABLE.sub("", template)
    if "{{" in leftover:
        raise RuleError("a '{{' is not closed by '}}'", path)
    if "}}" in leftover:
        raise RuleError("a '}}' closes no '{{'", path)


def render(template: str, facts: Mapping[str, Any]) -> str:
    """`template` with each variable replaced by its fact; a fact not known renders as ""."""
    return _VARIABLE.sub(lambda match: _text(facts.get(match.group(1).strip())), template)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a price of 1500.0 reads "1500"
    if isinstance(value, list | tuple):
        return ", ".join(_text(item) for item in value)
    return str(value)


def _suggestion(name: str) -> str:
    close = difflib.get_close_matches(name, FIELDS, n=1)
    if close:
        return f"; did you mean {{{{ {close[0]} }}}}?"
    return "; variables are the fields of the rule editor, e.g. {{ lead.name }}"
