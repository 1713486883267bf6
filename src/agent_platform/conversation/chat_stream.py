"""What the chat API and the dashboard's playground answer alike: the reply as server-sent
events, and the refusal of a caller over the chat rate limit.

Events, each `data` a JSON object: `delta` ({"text": ...}, a piece of the reply as the model
writes it), `done` (the whole answer, as the JSON response gives it), `error` (the contract's
error body, when the turn fails after the stream began).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import structlog
from fastapi import Request, Response
from fastapi.responses import StreamingResponse

from agent_platform.conversation import service
from agent_platform.conversation.chat_limit import ChatRateLimitedError, take_chat_request
from agent_platform.conversation.schemas import ChatOut
from agent_platform.kit.errors import error_body, error_response
from agent_platform.services import Services

EVENT_STREAM = "text/event-stream"
log = structlog.get_logger("chat")


async def rate_limit_refusal(request: Request, services: Services, caller: str) -> Response | None:
    """The 429 (with Retry-After) when `caller` is over the chat rate limit; else None."""
    try:
        await take_chat_request(
            services.redis, caller, services.settings.chat_rate_limit_per_minute
        )
    except ChatRateLimitedError as exc:
        response = error_response(request, exc.status_code, exc.code, exc.message, exc.details)
        response.headers["Retry-After"] = str(exc.retry_after_seconds)
        return response
    return None


def streamed_reply(request: Request, services: Services, turn: service.ChatTurn) -> Response:
    return StreamingResponse(
        _events(request, services, turn),
        media_type=EVENT_STREAM,
        # Proxies must pass each piece on as it comes, not gather the reply first.
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _events(
    request: Request, services: Services, turn: service.ChatTurn
) -> AsyncIterator[str]:
    try:
        async for event in service.answer_in_pieces(services, turn):
            if isinstance(event, ChatOut):
                yield _event("done", event.model_dump_json())
            else:
                yield _event("delta", json.dumps({"text": event}, ensure_ascii=False))
    except Exception as exc:
        # The status line is long sent: the failure can only be told as an event.
        log.error("chat_stream_failed", exc_info=exc)
        body = error_body(
            request, "internal_error", "The reply failed on our side; quote the request id."
        )
        yield _event("error", json.dumps(body))


def _event(name: str, data: str) -> str:
    return f"event: {name}\ndata: {data}\n\n"
