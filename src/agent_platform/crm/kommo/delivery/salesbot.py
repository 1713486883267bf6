"""Replies as the answer to a Salesbot `widget_request`: the bot shows them and goes on.

`POST /api/v4/salesbot/{bot_id}/continue/{continue_id}` with `data` and `execute_handlers`
(Kommo, "SalesBot widget block execution confirmation":
https://developers.kommo.com/reference/salesbot-widget-block-execution-confirmation). That
page sets the limits: at most 10 handlers, and a `show` handler's `value` of at most 80
characters. A reply is therefore shown as up to ten `show` texts of at most 80 characters,
cut at paragraph, sentence or word boundaries; a longer reply is cut short with "…". The
whole reply also goes in `data.reply`, so a bot can show it with `{{json.reply}}` in a
message step of its own.

Idempotency: a `continue_id` can be continued once; Kommo refuses a second continue. There
is nothing to look up before sending, so a retry sends again, and when an earlier attempt
may have reached Kommo, a refusal (a 4xx other than authorization, payment, blocking or rate
limiting) means that attempt did: the reply counts as delivered.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

import httpx
import structlog

from agent_platform.crm.kommo.delivery.base import SentReply
from agent_platform.crm.kommo.errors import KommoError
from agent_platform.crm.models import CrmDelivery

SHOW_VALUE_LIMIT = 80
MAX_HANDLERS = 10
ELLIPSIS = "…"
# Statuses that cannot mean "this continue_id was used already": the call never got that far.
_NOT_A_REFUSAL = frozenset({401, 402, 403, 429})
_SENTENCE_END = re.compile(r"[.!?…](?=\s)")

log = structlog.get_logger("kommo.delivery.salesbot")


def continue_path(bot_id: int, continue_id: int) -> str:
    return f"/api/v4/salesbot/{bot_id}/continue/{continue_id}"


def split_for_show(
    text: str, *, limit: int = SHOW_VALUE_LIMIT, max_parts: int = MAX_HANDLERS
) -> list[str]:
    """`text` in pieces of at most `limit` characters, at most `max_parts` of them."""
    parts: list[str] = []
    rest = text.strip()
    while rest and len(parts) < max_parts:
        if len(rest) <= limit:
            parts.append(rest)
            rest = ""
            break
        cut = _cut_point(rest, limit)
        parts.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        last = parts[-1][: limit - len(ELLIPSIS)].rstrip()
        parts[-1] = last + ELLIPSIS
    return parts


def _cut_point(text: str, limit: int) -> int:
    window = text[: limit + 1]  # a boundary right after the limit still fits
    paragraph = window.rfind("\n")
    if paragraph > 0:
        return paragraph
    sentences = [match.end() for match in _SENTENCE_END.finditer(window) if match.end() <= limit]
    if sentences and sentences[-1] > limit // 3:
        return sentences[-1]
    space = window.rfind(" ")
    return space if space > 0 else limit


def continue_body(text: str) -> dict[str, Any]:
    handlers = [
        {"handler": "show", "params": {"type": "text", "value": part}}
        for part in split_for_show(text)
    ]
    return {"data": {"reply": text}, "execute_handlers": handlers}


class KommoApi(Protocol):
    """The API v4 transport (crm.kommo.api.transport): rate limit, metrics, typed errors."""

    async def request(self, method: str, path: str, *, json: object = None) -> httpx.Response:
        """A 2xx answer, or the matching KommoError raised."""


class SalesbotSender:
    def __init__(self, api: KommoApi) -> None:
        self._api = api

    def __repr__(self) -> str:
        return f"SalesbotSender({self._api!r})"

    async def find_sent(self, delivery: CrmDelivery) -> SentReply | None:
        # Kommo shows no trace of a continue; send() tells from Kommo's refusal instead.
        return None

    async def send(self, delivery: CrmDelivery, *, may_have_been_sent: bool) -> SentReply:
        path = continue_path(delivery.payload["bot_id"], delivery.payload["continue_id"])
        try:
            await self._api.request("POST", path, json=delivery.payload["request"])
        except KommoError as exc:
            if may_have_been_sent and _is_refusal(exc):
                log.info("salesbot_already_continued", status=exc.status, detail=exc.detail)
                return SentReply()
            raise
        return SentReply()


def _is_refusal(exc: KommoError) -> bool:
    return exc.status is not None and 400 <= exc.status < 500 and exc.status not in _NOT_A_REFUSAL
