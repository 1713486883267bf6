"""Which way a reply goes, what exactly is sent, and who sends it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from agent_platform.crm.kommo.delivery import chats, salesbot
from agent_platform.crm.kommo.delivery.base import ReplySender, UndeliverableReplyError
from agent_platform.crm.kommo.delivery.chats import ChatAddress, ChatsSender
from agent_platform.crm.kommo.delivery.notes import NoteSender
from agent_platform.crm.kommo.delivery.salesbot import SalesbotSender
from agent_platform.crm.kommo.tokens import KommoAccess
from agent_platform.crm.kommo.webhooks import IncomingMessage
from agent_platform.crm.models import CrmConnection, ReplyChannel
from agent_platform.kit.crypto import SecretBox

NOTE_ENTITY_TYPES = frozenset({"leads", "contacts"})


@dataclass(frozen=True, slots=True)
class ReplyConnection:
    """What delivery needs of a connection, read in the job's first transaction.

    The channel secret stays encrypted here until the sender is made, right before use; the
    API token is not here at all: crm.kommo.session hands it over, refreshed when due.
    """

    reply_channel: ReplyChannel
    base_url: str
    chats_api_url: str | None
    chats_scope_id: str | None
    chats_secret_encrypted: str | None
    chats_bot_id: str | None

    @classmethod
    def of(cls, connection: CrmConnection) -> ReplyConnection:
        return cls(
            reply_channel=ReplyChannel(connection.reply_channel),
            base_url=connection.base_url,
            chats_api_url=connection.chats_api_url,
            chats_scope_id=connection.chats_scope_id,
            chats_secret_encrypted=connection.chats_secret_encrypted,
            chats_bot_id=connection.chats_bot_id,
        )


@dataclass(frozen=True, slots=True)
class SalesbotContinuation:
    """The Salesbot waiting for our answer to its widget_request."""

    bot_id: int
    continue_id: int


@dataclass(frozen=True, slots=True)
class ReplyRoute:
    channel: ReplyChannel
    entity_type: str
    entity_id: int
    chat: ChatAddress | None = None
    continuation: SalesbotContinuation | None = None

    def plan(self, text: str, *, msgid: str) -> dict[str, Any]:
        """The delivery's payload: the text and, for Chats and Salesbot, the exact request.

        Stored before the first attempt, so that every retry sends the very same request.
        """
        if self.chat is not None:
            request = chats.new_message_body(self.chat, text, msgid=msgid, at=datetime.now(UTC))
            return {"text": text, "scope_id": self.chat.scope_id, "request": request}
        if self.continuation is not None:
            return {
                "text": text,
                "bot_id": self.continuation.bot_id,
                "continue_id": self.continuation.continue_id,
                "request": salesbot.continue_body(text),
            }
        return {"text": text}


def route_reply(
    connection: ReplyConnection,
    message: IncomingMessage,
    continuation: SalesbotContinuation | None,
    *,
    bot_name: str,
) -> ReplyRoute:
    """The way the answer to `message` goes; UndeliverableReplyError when there is none.

    A Salesbot waiting for us is answered through it whatever the connection's channel, or
    it would wait forever; otherwise the connection's channel decides.
    """
    if continuation is not None:
        return _route(ReplyChannel.SALESBOT, message, continuation=continuation)
    match connection.reply_channel:
        case ReplyChannel.SALESBOT:
            raise UndeliverableReplyError(
                "the connection answers through its Salesbot, and this message did not come "
                "from one (its widget_request is answered instead)"
            )
        case ReplyChannel.CHATS:
            return _route(
                ReplyChannel.CHATS, message, chat=_chat_address(connection, message, bot_name)
            )
        case ReplyChannel.NOTE:
            if message.entity_type not in NOTE_ENTITY_TYPES:
                raise UndeliverableReplyError(
                    f"replies are written as notes on leads or contacts, not {message.entity_type}"
                )
            return _route(ReplyChannel.NOTE, message)


def _route(
    channel: ReplyChannel,
    message: IncomingMessage,
    *,
    chat: ChatAddress | None = None,
    continuation: SalesbotContinuation | None = None,
) -> ReplyRoute:
    return ReplyRoute(
        channel,
        entity_type=message.entity_type,
        entity_id=message.entity_id,
        chat=chat,
        continuation=continuation,
    )


def _chat_address(
    connection: ReplyConnection, message: IncomingMessage, bot_name: str
) -> ChatAddress:
    missing = [
        name
        for name, value in (
            ("the connection's Chats scope id", connection.chats_scope_id),
            ("the connection's Chats channel secret", connection.chats_secret_encrypted),
            ("the connection's Chats bot id", connection.chats_bot_id),
            ("the message's chat_id", message.chat_id),
            ("the message's author id", message.author_id),
        )
        if not value
    ]
    if missing:
        raise UndeliverableReplyError(f"a Chats API reply needs {', '.join(missing)}")
    return ChatAddress(
        scope_id=connection.chats_scope_id,  # type: ignore[arg-type]
        chat_id=message.chat_id,  # type: ignore[arg-type]
        customer_id=message.author_id,  # type: ignore[arg-type]
        customer_name=message.author_name,
        bot_id=connection.chats_bot_id,  # type: ignore[arg-type]
        bot_name=bot_name,
    )


def reply_sender(
    kind: str,
    connection: ReplyConnection,
    http: httpx.AsyncClient,
    secrets: SecretBox,
    kommo: KommoAccess,
) -> ReplySender:
    """The sender of a stored delivery: by the kind it was planned as, not today's setting.

    `kommo` is the account's API access from crm.kommo.session.call_kommo_with: a token
    valid now and the account's shared rate limit in front of every request.
    """
    match ReplyChannel(kind):
        case ReplyChannel.NOTE:
            return NoteSender(kommo.client(http))
        case ReplyChannel.SALESBOT:
            return SalesbotSender(kommo.transport(http))
        case ReplyChannel.CHATS:
            if connection.chats_secret_encrypted is None:
                raise UndeliverableReplyError("the connection has no Chats channel secret")
            return ChatsSender(
                http,
                connection.chats_api_url or chats.chats_api_for(connection.base_url),
                secrets.decrypt(connection.chats_secret_encrypted),
            )
