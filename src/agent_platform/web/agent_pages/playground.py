"""The playground: a message typed on the agent's page, answered by the agent's newest saved
version (a draft is tried before it is published), the reply streamed as it is written.

It runs the chat API's turn (conversation.service, as POST /api/v1/chat does) for the
signed-in user, with the same per-caller rate limit, and answers with the same server-sent
events: `delta` ({"text"}), `done` (the whole answer, with the conversation to continue) and
`error`. static/js/agents.js reads them with fetch() and a ReadableStream.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from agent_platform.agent import management
from agent_platform.conversation import service
from agent_platform.conversation.chat_limit import ChatRateLimitedError, take_chat_request
from agent_platform.conversation.schemas import ChatIn, ChatOut
from agent_platform.kit.errors import error_body, error_response
from agent_platform.organization.permissions import Permission, require
from agent_platform.services import Services
from agent_platform.web.agent_pages.loading import acting_principal
from agent_platform.web.auth import CsrfCheckedUser
from agent_platform.web.routing import PageRoute

router = APIRouter(route_class=PageRoute, include_in_schema=False)
log = structlog.get_logger("web.playground")

EVENT_STREAM = "text/event-stream"


@router.post("/app/agents/{agent_id}/playground")
async def playground(request: Request, user: CsrfCheckedUser, agent_id: uuid.UUID) -> Response:
    require(user.role, Permission.MANAGE_AGENTS)
    services: Services = request.app.state.services
    form = await request.form()
    message = form.get("message")
    conversation = form.get("conversation_id")
    principal = acting_principal(user)
    record = await management.get_agent(services, principal, agent_id)
    try:
        body = ChatIn.model_validate(
            {
                "agent_id": agent_id,
                "message": message if isinstance(message, str) else "",
                "conversation_id": conversation or None,
                "version": record.latest_version,
                "stream": True,
            }
        )
    except ValidationError as invalid:
        return JSONResponse(
            error_body(
                request,
                "validation_error",
                "The message is empty or too long.",
                {"errors": invalid.errors(include_url=False, include_context=False)},
            ),
            status_code=422,
        )
    try:
        await take_chat_request(
            services.redis, f"web-user:{user.user_id}", services.settings.chat_rate_limit_per_minute
        )
    except ChatRateLimitedError as limited:
        response = error_response(
            request, limited.status_code, limited.code, limited.message, limited.details
        )
        response.headers["Retry-After"] = str(limited.retry_after_seconds)
        return response
    turn = await service.start_chat(services, principal, body)
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
        log.error("playground_stream_failed", exc_info=exc)
        body = error_body(
            request, "internal_error", "The reply failed on our side; quote the request id."
        )
        yield _event("error", json.dumps(body))


def _event(name: str, data: str) -> str:
    return f"event: {name}\ndata: {data}\n\n"
