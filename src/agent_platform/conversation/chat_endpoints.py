"""POST /api/v1/chat: the agent's reply as JSON, or streamed as server-sent events.

Events of a stream, each `data` a JSON object:
- `delta`: `{"text": ...}`, a piece of the reply as the model writes it;
- `done`: the whole answer, the same object the JSON response gives;
- `error`: the contract's error body, when the turn fails after the stream began.
Refusals found before the turn starts (bad input, unknown agent, rate limit) are ordinary
4xx responses, stream or not.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import StreamingResponse

from agent_platform.conversation import service
from agent_platform.conversation.chat_limit import ChatRateLimitedError, take_chat_request
from agent_platform.conversation.schemas import ChatIn, ChatOut
from agent_platform.kit.errors import error_body, error_response
from agent_platform.organization.auth import CurrentPrincipal
from agent_platform.services import Services

router = APIRouter(prefix="/api/v1/chat", tags=["chat"])
log = structlog.get_logger("chat")

EVENT_STREAM = "text/event-stream"


@router.post(
    "",
    summary="The agent's reply to a message (JSON, or server-sent events with stream)",
    response_model=ChatOut,
    responses={200: {"content": {EVENT_STREAM: {}}}, 429: {"description": "Rate limited"}},
)
async def chat(request: Request, principal: CurrentPrincipal, body: ChatIn) -> Response:
    services: Services = request.app.state.services
    try:
        await take_chat_request(
            services.redis, str(principal.actor_id), services.settings.chat_rate_limit_per_minute
        )
    except ChatRateLimitedError as exc:
        response = error_response(request, exc.status_code, exc.code, exc.message, exc.details)
        response.headers["Retry-After"] = str(exc.retry_after_seconds)
        return response
    turn = await service.start_chat(services, principal, body)
    if body.stream or EVENT_STREAM in request.headers.get("accept", ""):
        return StreamingResponse(_events(request, services, turn), media_type=EVENT_STREAM)
    answer = await service.answer(services, turn)
    return Response(answer.model_dump_json(), media_type="application/json")


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
