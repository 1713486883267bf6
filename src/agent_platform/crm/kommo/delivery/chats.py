"""Replies as chat messages through a Chats API (amojo) custom channel.

`POST /v2/origin/custom/{scope_id}` with a `new_message` event whose sender is the channel's
bot and whose receiver is the customer (Kommo, "Send, receive, or import messages":
https://developers.kommo.com/reference/send-import-messages). The Chats API takes no token:
every request is signed with the channel's secret (Kommo, "Chats API authorization":
https://developers.kommo.com/reference/chats-api-authorization-and-headers):

    Content-MD5  = md5(body), lowercase hex
    Date         = RFC 2822, e.g. "Thu, 01 Jan 2023 12:00:00 +0000" (valid for 15 minutes)
    X-Signature  = HMAC-SHA1(secret, "POST\\n{Content-MD5}\\n{Content-Type}\\n{Date}\\n{path}"),
                   lowercase hex

Idempotency: the message carries our own `msgid`, fixed when the reply is stored. Kommo keys
a chat's messages by that id (it is how an edit finds its message), so a retry re-sends the
same stored body under the same msgid rather than looking for the earlier attempt's message.

Addressing: the `message[add]` webhook names the chat (`chat_id`, Kommo's id of it) and the
customer who wrote (`author[id]`, their Chats API id). The webhook does not carry the
channel-side conversation id, so Kommo's chat id is sent as `conversation_ref_id` and,
for want of another, as `conversation_id` too.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import structlog

from agent_platform.crm.kommo.delivery.base import SentReply
from agent_platform.crm.kommo.errors import (
    KommoError,
    KommoNotFound,
    KommoRateLimited,
    KommoUnavailable,
    KommoValidationError,
)
from agent_platform.crm.models import CrmDelivery

CONTENT_TYPE = "application/json"
KOMMO_CHATS_API = "https://amojo.kommo.com"
AMOCRM_CHATS_API = "https://amojo.amocrm.ru"

log = structlog.get_logger("kommo.delivery.chats")


def chats_api_for(base_url: str) -> str:
    """The Chats API host of an account: amoCRM's accounts have their own."""
    host = urlsplit(base_url).hostname or ""
    return AMOCRM_CHATS_API if host.endswith(".amocrm.ru") else KOMMO_CHATS_API


def new_message_path(scope_id: str) -> str:
    return f"/v2/origin/custom/{scope_id}"


def signature(secret: str, *, method: str, content_md5: str, date: str, path: str) -> str:
    text = "\n".join([method.upper(), content_md5, CONTENT_TYPE, date, path])
    return hmac.new(secret.encode(), text.encode(), hashlib.sha1).hexdigest()


def signed_headers(
    secret: str, *, method: str, path: str, body: bytes, now: datetime
) -> dict[str, str]:
    content_md5 = hashlib.md5(body).hexdigest()  # noqa: S324 - the protocol's checksum, not a secret
    date = format_datetime(now.astimezone(UTC))
    return {
        "Date": date,
        "Content-Type": CONTENT_TYPE,
        "Content-MD5": content_md5,
        "X-Signature": signature(
            secret, method=method, content_md5=content_md5, date=date, path=path
        ),
    }


@dataclass(frozen=True, slots=True)
class ChatAddress:
    """Where a chat reply goes: the channel scope, the chat, the customer, our bot."""

    scope_id: str
    chat_id: str
    customer_id: str
    customer_name: str | None
    bot_id: str
    bot_name: str


def new_message_body(
    address: ChatAddress, text: str, *, msgid: str, at: datetime
) -> dict[str, Any]:
    msec = int(at.timestamp() * 1000)
    receiver: dict[str, Any] = {"id": address.customer_id, "ref_id": address.customer_id}
    if address.customer_name:
        receiver["name"] = address.customer_name
    return {
        "event_type": "new_message",
        "payload": {
            "timestamp": msec // 1000,
            "msec_timestamp": msec,
            "msgid": msgid,
            "conversation_id": address.chat_id,
            "conversation_ref_id": address.chat_id,
            "sender": {"id": address.bot_id, "ref_id": address.bot_id, "name": address.bot_name},
            "receiver": receiver,
            "message": {"type": "text", "text": text},
            "silent": False,
        },
    }


class ChatsSender:
    def __init__(self, http: httpx.AsyncClient, api_url: str, secret: str) -> None:
        self._http = http
        self._api_url = api_url.rstrip("/")
        self._secret = secret

    def __repr__(self) -> str:
        return f"ChatsSender({self._api_url!r})"

    async def find_sent(self, delivery: CrmDelivery) -> SentReply | None:
        # Nothing to look up: re-sending under the same msgid is itself idempotent.
        return None

    async def send(self, delivery: CrmDelivery, *, may_have_been_sent: bool) -> SentReply:
        path = new_message_path(delivery.payload["scope_id"])
        body = json.dumps(delivery.payload["request"], ensure_ascii=False).encode()
        headers = signed_headers(
            self._secret, method="POST", path=path, body=body, now=datetime.now(UTC)
        )
        try:
            response = await self._http.post(self._api_url + path, content=body, headers=headers)
        except httpx.TransportError as exc:
            # The type name says enough; the request stays out of the message.
            raise KommoUnavailable(None, f"{type(exc).__name__} calling the Chats API") from exc
        if not response.is_success:
            raise _error_from(response)
        return SentReply(external_ref=_message_id(response))


def _error_from(response: httpx.Response) -> KommoError:
    """The Chats API's refusals as KommoErrors: 401/403 mean the signature was refused."""
    status = response.status_code
    detail = f"Chats API: {response.text[:300] or response.reason_phrase}"
    if status == 400:
        return KommoValidationError(status, detail, validation_errors=[])
    if status == 404:
        return KommoNotFound(status, detail)
    if status == 429:
        return KommoRateLimited(status, detail, retry_after=None)
    if status >= 500:
        return KommoUnavailable(status, detail)
    return KommoError(status, detail)


def _message_id(response: httpx.Response) -> str | None:
    """Kommo's id of the new message; a success without one is still a success."""
    try:
        message_id = response.json()["new_message"]["msgid"]
    except (ValueError, LookupError, TypeError):
        log.warning("chats_reply_without_message_id", status=response.status_code)
        return None
    return str(message_id)[:255]
