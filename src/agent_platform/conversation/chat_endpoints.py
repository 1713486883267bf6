"""POST /api/v1/chat: the agent's reply as JSON, or streamed as server-sent events.

The events are conversation.chat_stream's (delta, done, error). Refusals found before the
turn starts (bad input, unknown agent, rate limit) are ordinary 4xx responses, stream or not.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from agent_platform.conversation import service
from agent_platform.conversation.chat_stream import (
    EVENT_STREAM,
    rate_limit_refusal,
    streamed_reply,
)
from agent_platform.conversation.schemas import ChatIn, ChatOut
from agent_platform.organization.auth import CurrentPrincipal
from agent_platform.services import Services

router = APIRouter(prefix="/api/v1/chat", tags=["chat"])


@router.post(
    "",
    summary="The agent's reply to a message (JSON, or server-sent events with stream)",
    response_model=ChatOut,
    responses={200: {"content": {EVENT_STREAM: {}}}, 429: {"description": "Rate limited"}},
)
async def chat(request: Request, principal: CurrentPrincipal, body: ChatIn) -> Response:
    services: Services = request.app.state.services
    refusal = await rate_limit_refusal(request, services, str(principal.actor_id))
    if refusal is not None:
        return refusal
    turn = await service.start_chat(services, principal, body)
    if body.stream or EVENT_STREAM in request.headers.get("accept", ""):
        return streamed_reply(request, services, turn)
    answer = await service.answer(services, turn)
    return Response(answer.model_dump_json(), media_type="application/json")
