"""Pages: /app/conversations (by lead, filtered, paged), a conversation with its messages,
tool calls, tokens and cost, and the buttons that take it over from the agent or give it
back; /app/logs lives in conversation_pages.logs."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from agent_platform.conversation.schemas import Channel
from agent_platform.organization.permissions import Permission, allowed
from agent_platform.services import Services
from agent_platform.web.auth import CsrfCheckedUser, CurrentUser
from agent_platform.web.conversation_pages import logs, service
from agent_platform.web.conversation_pages.filters import (
    BadFilterError,
    kommo_id,
    object_id,
    one_of,
    page_request,
)
from agent_platform.web.conversation_pages.queries import ConversationQuery
from agent_platform.web.conversation_pages.states import AgentState, state_of
from agent_platform.web.conversation_pages.views import (
    conversation_row,
    dollars,
    entity_of,
    in_call_order,
    message_view,
    moment,
    page_link,
)
from agent_platform.web.rendering import render
from agent_platform.web.routing import PageRoute, redirect

router = APIRouter(route_class=PageRoute, include_in_schema=False)
router.include_router(logs.router)

LIST_PATH = "/app/conversations"
CHANNELS: tuple[Channel, ...] = ("kommo", "api")


def _services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


@router.get(LIST_PATH)
async def conversation_list(
    request: Request,
    user: CurrentUser,
    state: str = "",
    channel: str = "",
    lead: str = "",
    cursor: str = "",
) -> Response:
    filters = {"state": state, "channel": channel, "lead": lead.strip()}
    context: dict[str, Any] = {
        "filters": filters,
        "states": list(AgentState),
        "channels": CHANNELS,
        "rows": [],
        "next_url": None,
        "first_url": page_link(LIST_PATH, filters) if cursor else None,
        "error_key": None,
    }
    try:
        chosen_state = one_of(state, list(AgentState), "conversations.bad_state")
        query = ConversationQuery(
            state=None if chosen_state is None else AgentState(chosen_state),
            channel=one_of(channel, CHANNELS, "conversations.bad_channel"),
            lead_id=kommo_id(lead, "conversations.bad_lead"),
        )
        page = page_request(cursor)
    except BadFilterError as refused:
        context["error_key"] = refused.key
        return render(request, "conversations/list.html", status_code=400, **context)
    found = await service.list_conversations(_services(request), user.organization_id, query, page)
    now = datetime.now(UTC)
    context["rows"] = [conversation_row(c, found.agent_names, now) for c in found.page.items]
    if found.page.next_cursor is not None:
        context["next_url"] = page_link(LIST_PATH, filters, cursor=found.page.next_cursor)
    return render(request, "conversations/list.html", **context)


@router.get(LIST_PATH + "/{conversation_id}")
async def conversation_page(request: Request, user: CurrentUser, conversation_id: str) -> Response:
    found = await service.read_conversation(
        _services(request), user.organization_id, object_id(conversation_id)
    )
    conversation = found.conversation
    return render(
        request,
        "conversations/detail.html",
        conversation=conversation,
        entity=entity_of(conversation),
        agent_name=found.agent_name,
        state=state_of(conversation, datetime.now(UTC)),
        handed_off_at=moment(conversation.handed_off_at),
        paused_until=moment(conversation.agent_paused_until),
        stopped_at=moment(conversation.stopped_at),
        last_manager_message_at=moment(conversation.last_manager_message_at),
        messages=[message_view(message) for message in in_call_order(found.messages)],
        usage=found.usage,
        total_cost=dollars(found.usage.cost_usd),
        can_take_over=allowed(user.role, Permission.TAKE_OVER_CONVERSATIONS),
    )


@router.post(LIST_PATH + "/{conversation_id}/take-over")
async def take_over(request: Request, user: CsrfCheckedUser, conversation_id: str) -> Response:
    found_id = object_id(conversation_id)
    await service.take_over(_services(request), user, found_id)
    return redirect(f"{LIST_PATH}/{found_id}")


@router.post(LIST_PATH + "/{conversation_id}/resume")
async def resume(request: Request, user: CsrfCheckedUser, conversation_id: str) -> Response:
    found_id = object_id(conversation_id)
    await service.resume(_services(request), user, found_id)
    return redirect(f"{LIST_PATH}/{found_id}")
