"""The sandbox's Chats API (amojo): one custom channel that checks signatures as Kommo does.

`POST /v2/origin/custom/{scope_id}` takes a `new_message` event. Every request must carry
`Date` (RFC 2822, at most 15 minutes off), `Content-Type: application/json`, `Content-MD5`
(lowercase hex md5 of the body bytes) and `X-Signature`: lowercase hex HMAC-SHA1 with the
channel's secret of "METHOD\\nContent-MD5\\nContent-Type\\nDate\\npath" (Kommo, "Chats API
authorization": https://developers.kommo.com/reference/chats-api-authorization-and-headers).
A missing header is answered 401, a wrong checksum, signature or date 403.

The check is written here on its own, not borrowed from the platform's signer, so that a
mistake in one is caught by the other. Messages are keyed by `msgid` within the scope: the
same msgid again is answered with the message it already made, not a second one.

The channel's scope id, secret and bot id are fixed sandbox values (CHANNEL_* below). What
was received is readable at `GET /sandbox/chats/messages`.
"""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from dataclasses import asdict, dataclass, field
from email.utils import parsedate_to_datetime
from http import HTTPStatus
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.exceptions import HTTPException

CHANNEL_SCOPE_ID = "f90ba33d-c9d9-44da-b76c-c349b0ecbe41_af9945ff-1490-4cad-807d-945c15d88bec"
CHANNEL_SECRET = "sandbox-chats-channel-secret-5a44c5dff55f3c15a4cce8d7"  # noqa: S105 - demo value
CHANNEL_BOT_ID = "a1b2c3d4-0000-4000-8000-00000000b07d"
SIGNATURE_LIFETIME_SECONDS = 15 * 60
CONTENT_TYPE = "application/json"


class _Participant(BaseModel):
    model_config = ConfigDict(strict=True)

    id: str = Field(min_length=1)
    ref_id: str | None = None
    name: str | None = None


class _Message(BaseModel):
    model_config = ConfigDict(strict=True)

    type: Literal["text"]
    text: str = Field(min_length=1)


class _NewMessagePayload(BaseModel):
    model_config = ConfigDict(strict=True)

    timestamp: int
    msec_timestamp: int
    msgid: str = Field(min_length=1)
    conversation_id: str = Field(min_length=1)
    conversation_ref_id: str | None = None
    sender: _Participant
    receiver: _Participant | None = None  # absent when the customer is the sender
    message: _Message
    silent: bool = False


class _NewMessageEvent(BaseModel):
    model_config = ConfigDict(strict=True)

    event_type: Literal["new_message"]
    payload: _NewMessagePayload


@dataclass
class ChatMessage:
    """One message the channel received, as the inspection route shows it."""

    id: str  # Kommo's id of the message
    scope_id: str
    msgid: str
    conversation_id: str
    conversation_ref_id: str | None
    sender: dict[str, Any]
    receiver: dict[str, Any] | None
    text: str
    timestamp: int
    received_at: float


@dataclass
class ChatsChannel:
    messages: dict[tuple[str, str], ChatMessage] = field(default_factory=dict)


def _channel(request: Request) -> ChatsChannel:
    state = request.app.state
    if not hasattr(state, "chats_channel"):
        state.chats_channel = ChatsChannel()
    channel: ChatsChannel = state.chats_channel
    return channel


Channel = Annotated[ChatsChannel, Depends(_channel)]

router = APIRouter()


@router.post("/v2/origin/custom/{scope_id}")
async def new_message(scope_id: str, request: Request, channel: Channel) -> Response:
    body = await request.body()
    _verify(request, body)
    if scope_id != CHANNEL_SCOPE_ID:
        raise HTTPException(HTTPStatus.NOT_FOUND, "Unknown scope")
    try:
        event = _NewMessageEvent.model_validate_json(body)
    except ValidationError as exc:
        raise HTTPException(HTTPStatus.BAD_REQUEST, _first_error(exc)) from None
    payload = event.payload
    key = (scope_id, payload.msgid)
    message = channel.messages.get(key)
    if message is None:
        message = ChatMessage(
            id=str(uuid.uuid4()),
            scope_id=scope_id,
            msgid=payload.msgid,
            conversation_id=payload.conversation_id,
            conversation_ref_id=payload.conversation_ref_id,
            sender=payload.sender.model_dump(exclude_none=True),
            receiver=payload.receiver.model_dump(exclude_none=True) if payload.receiver else None,
            text=payload.message.text,
            timestamp=payload.timestamp,
            received_at=time.time(),
        )
        channel.messages[key] = message
    return JSONResponse(
        {
            "new_message": {
                "conversation_id": message.conversation_ref_id or message.conversation_id,
                "sender_id": message.sender.get("ref_id") or message.sender["id"],
                "receiver_id": (message.receiver or {}).get("ref_id"),
                "msgid": message.id,
                "ref_id": message.msgid,
            }
        }
    )


@router.get("/sandbox/chats/messages")
async def received_messages(channel: Channel) -> Response:
    return JSONResponse({"messages": [asdict(m) for m in channel.messages.values()]})


def _verify(request: Request, body: bytes) -> None:
    headers = request.headers
    missing = [
        name
        for name in ("Date", "Content-Type", "Content-MD5", "X-Signature")
        if name not in headers
    ]
    if missing:
        raise HTTPException(HTTPStatus.UNAUTHORIZED, f"Missing headers: {', '.join(missing)}")
    if headers["Content-Type"] != CONTENT_TYPE:
        raise HTTPException(HTTPStatus.FORBIDDEN, "Content-Type must be application/json")
    if headers["Content-MD5"] != hashlib.md5(body).hexdigest():  # noqa: S324 - the protocol's
        raise HTTPException(HTTPStatus.FORBIDDEN, "Content-MD5 does not match the body")
    try:
        signed_at = parsedate_to_datetime(headers["Date"])
    except (TypeError, ValueError):
        raise HTTPException(HTTPStatus.FORBIDDEN, "Date is not an RFC 2822 date") from None
    if signed_at.tzinfo is None:
        raise HTTPException(HTTPStatus.FORBIDDEN, "Date has no time zone")
    if abs(time.time() - signed_at.timestamp()) > SIGNATURE_LIFETIME_SECONDS:
        raise HTTPException(HTTPStatus.FORBIDDEN, "The signature has expired")
    signed = "\n".join(
        [
            request.method,
            headers["Content-MD5"],
            headers["Content-Type"],
            headers["Date"],
            request.url.path,
        ]
    )
    expected = hmac.new(CHANNEL_SECRET.encode(), signed.encode(), hashlib.sha1).hexdigest()
    if not hmac.compare_digest(headers["X-Signature"], expected):
        raise HTTPException(HTTPStatus.FORBIDDEN, "Invalid signature")


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    return f"{'.'.join(map(str, error['loc']))}: {error['msg']}"
