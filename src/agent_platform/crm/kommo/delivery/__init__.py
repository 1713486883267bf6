"""Delivering the agent's reply to Kommo exactly once, by the connection's reply channel.

Channels (crm.models.ReplyChannel): a note on the lead ("draft for a manager"), a message in
the chat through our Chats API channel, or the answer to a Salesbot widget_request.

Every reply is a `crm_deliveries` row under an idempotency key, stored with the exact request
before the first attempt and counted before each send. A retried job finds the row: `sent`
is done; `pending` with attempts > 0 means an earlier attempt may have reached Kommo, and
each channel settles that its own way: a note is looked for among the entity's notes; a chat
message is re-sent under the same msgid, which Kommo keys messages by; a Salesbot continue
is re-sent, and Kommo's refusal of an already used continue_id counts as delivered.
"""

from agent_platform.crm.kommo.delivery.base import ReplySender, SentReply, UndeliverableReplyError
from agent_platform.crm.kommo.delivery.routing import (
    ReplyConnection,
    ReplyRoute,
    SalesbotContinuation,
    reply_sender,
    route_reply,
)

__all__ = [
    "ReplyConnection",
    "ReplyRoute",
    "ReplySender",
    "SalesbotContinuation",
    "SentReply",
    "UndeliverableReplyError",
    "reply_sender",
    "route_reply",
]
