"""The sandbox's Salesbot continue call: what a widget_request's answer goes to.

`POST /api/v4/salesbot/{bot_id}/continue/{continue_id}` with `data` and `execute_handlers`,
limited as Kommo documents (https://developers.kommo.com/reference/salesbot-widget-block-
execution-confirmation): at most 10 handlers, a `show` value of at most 80 characters, at
most 25 buttons. A bot waits for one continue: a second one for the same continue_id is
refused with a 400 problem, as the bot has gone on. (Kommo documents no answer for that
case; the platform treats any such refusal after a possibly delivered attempt as delivered.)

What was received is readable at `GET /sandbox/salesbot/continues`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from http import HTTPStatus
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator
from starlette.exceptions import HTTPException

from agent_platform.crm.sandbox.api_common import require_token

MAX_HANDLERS = 10
SHOW_VALUE_LIMIT = 80
MAX_BUTTONS = 25


class _HandlerParams(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str | None = None
    value: str | None = None
    buttons: list[str] | None = Field(default=None, max_length=MAX_BUTTONS)


class _Handler(BaseModel):
    handler: str = Field(min_length=1)
    params: _HandlerParams

    @model_validator(mode="after")
    def _show_fits(self) -> _Handler:
        if self.handler == "show":
            if self.params.type not in ("text", "buttons", "buttons_url"):
                raise ValueError("show needs params.type text, buttons or buttons_url")
            if not self.params.value or len(self.params.value) > SHOW_VALUE_LIMIT:
                raise ValueError(f"show needs a params.value of 1 to {SHOW_VALUE_LIMIT} characters")
        return self


class ContinueIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data: dict[str, Any] = Field(default_factory=dict)
    execute_handlers: list[_Handler] = Field(default_factory=list, max_length=MAX_HANDLERS)


@dataclass
class Continue:
    bot_id: int
    continue_id: int
    data: dict[str, Any]
    execute_handlers: list[dict[str, Any]]
    received_at: float


@dataclass
class SalesbotRecord:
    continues: dict[tuple[int, int], Continue] = field(default_factory=dict)


def _record(request: Request) -> SalesbotRecord:
    state = request.app.state
    if not hasattr(state, "salesbot_record"):
        state.salesbot_record = SalesbotRecord()
    record: SalesbotRecord = state.salesbot_record
    return record


Record = Annotated[SalesbotRecord, Depends(_record)]

router = APIRouter()


# The same token check as every other API route: the static token and OAuth-issued ones.
@router.post("/api/v4/{bot}/{bot_id}/continue/{continue_id}", dependencies=[Depends(require_token)])
async def continue_bot(
    bot: Literal["salesbot", "marketingbot"],
    bot_id: int,
    continue_id: int,
    record: Record,
    body: Annotated[ContinueIn, Body()],
) -> Response:
    key = (bot_id, continue_id)
    if key in record.continues:
        raise HTTPException(
            HTTPStatus.BAD_REQUEST, f"The {bot} is not waiting for continue_id {continue_id}"
        )
    record.continues[key] = Continue(
        bot_id=bot_id,
        continue_id=continue_id,
        data=body.data,
        execute_handlers=[h.model_dump(exclude_none=True) for h in body.execute_handlers],
        received_at=time.time(),
    )
    return JSONResponse({}, status_code=HTTPStatus.OK)


@router.get("/sandbox/salesbot/continues")
async def received_continues(record: Record) -> Response:
    return JSONResponse({"continues": [asdict(c) for c in record.continues.values()]})
