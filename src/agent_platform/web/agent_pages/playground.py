"""The playground: a message typed on the agent's page, answered by the agent's newest saved
version (a draft is tried before it is published), the reply streamed as it is written.

It runs the chat API's turn (conversation.service, as POST /api/v1/chat does) for the
signed-in user, with the same per-caller rate limit, and answers with the same server-sent
events: `delta` ({"text"}), `done` (the whole answer, with the conversation to continue) and
`error`. static/js/agents.js reads them with fetch() and a ReadableStream.
"""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from pydantic import ValidationError
from starlette.responses import JSONResponse, Response

from agent_platform.agent import management
from agent_platform.conversation import service
from agent_platform.conversation.chat_stream import rate_limit_refusal, streamed_reply
from agent_platform.conversation.schemas import ChatIn
from agent_platform.kit.errors import error_body
from agent_platform.organization.permissions import Permission, require
from agent_platform.services import Services
from agent_platform.web.auth import CsrfCheckedUser
from agent_platform.web.routing import PageRoute

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.post("/app/agents/{agent_id}/playground")
async def playground(request: Request, user: CsrfCheckedUser, agent_id: uuid.UUID) -> Response:
    require(user.role, Permission.MANAGE_AGENTS)
    services: Services = request.app.state.services
    form = await request.form()
    message = form.get("message")
    conversation = form.get("conversation_id")
    principal = user.as_principal()
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
    refusal = await rate_limit_refusal(request, services, str(principal.actor_id))
    if refusal is not None:
        return refusal
    turn = await service.start_chat(services, principal, body)
    return streamed_reply(request, services, turn)
