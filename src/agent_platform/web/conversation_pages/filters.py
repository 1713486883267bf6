"""Reading a list page's filters from its query string.

A filter the page cannot read is answered with the page itself, saying which one, and status
400: never a 500, never a JSON body on a page.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection

from agent_platform.kit.errors import NotFoundError
from agent_platform.kit.pagination import InvalidCursorError, PageRequest

PAGE_SIZE = 25
# Kommo's ids are positive and fit a BIGINT column.
_LARGEST_ID = 2**63 - 1


class BadFilterError(Exception):
    """A filter's value is not one the page offers; `key` is the message to show."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def kommo_id(value: str, error_key: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    if not value.isascii() or not value.isdigit() or not 1 <= int(value) <= _LARGEST_ID:
        raise BadFilterError(error_key)
    return int(value)


def one_of(value: str, allowed: Collection[str], error_key: str) -> str | None:
    if not value:
        return None
    if value not in allowed:
        raise BadFilterError(error_key)
    return value


def text(value: str, max_length: int = 100) -> str | None:
    value = value.strip()
    return value[:max_length] or None


def page_request(cursor: str) -> PageRequest:
    try:
        return PageRequest.parse(PAGE_SIZE, cursor or None)
    except InvalidCursorError as refused:
        raise BadFilterError("conversations.bad_cursor") from refused


def object_id(value: str) -> uuid.UUID:
    """A path's object id; one that is not an id names no object: 404, as any unknown one."""
    try:
        return uuid.UUID(value)
    except ValueError as refused:
        raise NotFoundError("There is nothing at this address.") from refused
