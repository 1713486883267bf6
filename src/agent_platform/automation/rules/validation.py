"""What the automation API refuses, and how: 422 `invalid_automation` naming the path.

The engine and the actions parser check a tree or an action list on its own; this adds what
only the database knows (a referenced rule or sequence exists in the organization) and what
only PostgreSQL refuses (JSON it cannot store), so that no input reaches a 500.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.automation.actions import action_json, parse_actions
from agent_platform.automation.engine import Condition, RuleError, parse_condition, rule_ids
from agent_platform.automation.events import EventType
from agent_platform.automation.rules import repository
from agent_platform.automation.sequences import repository as sequences
from agent_platform.crm import repository as crm
from agent_platform.crm.models import ConnectionStatus
from agent_platform.kit.errors import AppError

# Beyond the engine's own limits (200 nodes, depth 8): any JSON we store, as a whole.
MAX_JSON_VALUES = 20_000
MAX_JSON_DEPTH = 32


class InvalidAutomationError(AppError):
    status_code = 422
    code = "invalid_automation"

    def __init__(self, path: str, message: str) -> None:
        super().__init__(
            f"{path}: {message}" if path else message,
            details=[{"path": path, "message": message}],
        )

    @classmethod
    def of(cls, error: RuleError) -> InvalidAutomationError:
        return cls(error.path, error.message)


def check_storable(value: object, path: str) -> None:
    """Refuse JSON PostgreSQL's jsonb cannot hold (NUL characters, NaN, infinities, lone
    surrogates) or that is absurdly large, before the engine or the database sees it."""
    pending: list[tuple[object, str, int]] = [(value, path, 0)]
    seen = 0
    while pending:
        item, where, depth = pending.pop()
        seen += 1
        if seen > MAX_JSON_VALUES:
            raise InvalidAutomationError(path, f"too large: more than {MAX_JSON_VALUES} values")
        if depth > MAX_JSON_DEPTH:
            raise InvalidAutomationError(where, f"nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, str):
            _check_text(item, where)
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidAutomationError(where, "numbers must be finite")
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(str(key), where)
                pending.append((child, f"{where}.{key}" if where else str(key), depth + 1))
        elif isinstance(item, list):
            pending.extend((child, f"{where}[{i}]", depth + 1) for i, child in enumerate(item))


def _check_text(text: str, path: str) -> None:
    if "\x00" in text:
        raise InvalidAutomationError(path, "text cannot contain NUL characters")
    try:
        text.encode()
    except UnicodeEncodeError as exc:
        raise InvalidAutomationError(path, "text must be valid Unicode") from exc


def parsed_condition(
    tree: object, *, allow_rule_refs: bool, path: str = "conditions"
) -> Condition | None:
    """The tree parsed (None: no conditions, always matches), or 422 naming the bad part."""
    if tree is None:
        return None
    check_storable(tree, path)
    try:
        return parse_condition(tree, allow_rule_refs=allow_rule_refs, path=path)
    except RuleError as error:
        raise InvalidAutomationError.of(error) from error


def parsed_actions(
    raw: object,
    *,
    event_type: EventType | None,
    in_sequence: bool,
    allow_private_networks: bool,
    path: str = "actions",
) -> list[dict[str, Any]]:
    """The actions as they are stored, or 422 naming the bad one."""
    check_storable(raw, path)
    try:
        actions = parse_actions(
            raw,
            event_type=event_type,
            in_sequence=in_sequence,
            allow_private_networks=allow_private_networks,
            path=path,
        )
    except RuleError as error:
        raise InvalidAutomationError.of(error) from error
    return [action_json(action) for action in actions]


async def check_rules_exist(
    session: AsyncSession, organization_id: uuid.UUID, condition: Condition | None, path: str
) -> None:
    """Every `{"rule": id}` in the tree names a rule of the organization."""
    if condition is None:
        return
    wanted = rule_ids(condition)
    if not wanted:
        return
    ids = _uuids(wanted, path, "rule")
    found = {rule.id for rule in await repository.rules_by_ids(session, organization_id, ids)}
    missing = sorted(str(rule_id) for rule_id in ids - found)
    if missing:
        raise InvalidAutomationError(path, f"no rule {missing[0]} in this organization")


async def check_sequences_exist(
    session: AsyncSession,
    organization_id: uuid.UUID,
    actions: Iterable[dict[str, Any]],
    path: str,
) -> None:
    """Every sequence a start_sequence / stop_sequence action names is the organization's."""
    named = {
        index: str(action["sequence_id"])
        for index, action in enumerate(actions)
        if action.get("type") in {"start_sequence", "stop_sequence"}
        and action.get("sequence_id") is not None
    }
    if not named:
        return
    found = await sequences.sequence_ids_in(
        session, organization_id, _uuids(named.values(), path, "sequence")
    )
    for index, sequence_id in sorted(named.items()):
        if uuid.UUID(sequence_id) not in found:
            raise InvalidAutomationError(
                f"{path}[{index}].sequence_id", f"no sequence {sequence_id} in this organization"
            )


class InvalidConnectionError(AppError):
    status_code = 422
    code = "invalid_connection"


async def check_connection(
    session: AsyncSession, organization_id: uuid.UUID, connection_id: uuid.UUID
) -> None:
    """The connection is the organization's, and in service."""
    connection = await crm.connection_of(session, organization_id, connection_id)
    if connection is None:
        raise InvalidConnectionError(
            "Your organization has no Kommo connection with this id.",
            details=[{"path": "connection_id", "message": "unknown connection"}],
        )
    if connection.status != ConnectionStatus.ACTIVE.value:
        raise InvalidConnectionError(
            f"The Kommo connection is {connection.status}: nothing can be done through it.",
            details=[{"path": "connection_id", "message": connection.status}],
        )


def _uuids(values: Iterable[str], path: str, what: str) -> set[uuid.UUID]:
    try:
        return {uuid.UUID(value) for value in values}
    except ValueError as exc:
        raise InvalidAutomationError(path, f"a {what} id must be a UUID") from exc
