"""Kommo's request limit and switchable faults for the sandbox's API, and its arrival log.

Kommo allows an integration 7 requests per second per account and answers more with
429 (developers.kommo.com, "Limits"); repeated violations get the IP blocked. The sandbox
enforces the same limit on `/api/v4` over a sliding second, so a client that would be
throttled by Kommo is throttled here.

Faults, switched on with `POST /sandbox/faults` (any subset of the fields; `DELETE` restores
the defaults, `GET` shows them):
- `storm_429`: the next N API requests get 429 with `Retry-After: retry_after`;
- `errors_5xx` / `error_rate_5xx`: the next N requests, or this share of all, get `error_status`;
- `delay_seconds`: every API and token answer is this late;
- `blocked`: every API request gets 403, as for a blocked account or integration;
- `revoke_tokens`: every OAuth token issued so far stops working (as when access is removed);
- `expire_access_tokens`: every issued access token expires now (refresh tokens still work);
- `rate_limit`: whether the 7 requests/second limit is enforced (on by default).

`GET /sandbox/faults/requests` lists every API request as it arrived (seconds on the
sandbox's monotonic clock, method, path, the status it got), 429s included: the record that
shows whether clients kept to the limit. `DELETE` empties it, to start a measurement afresh.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from http import HTTPStatus
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Message, Receive, Scope, Send

KOMMO_REQUESTS_PER_SECOND = 7
RATE_WINDOW_SECONDS = 1.0
REQUEST_LOG_SIZE = 100_000


@dataclass
class Faults:
    rate_limit: bool = True
    storm_429: int = 0
    retry_after: int = 1
    errors_5xx: int = 0
    error_rate_5xx: float = 0.0
    error_status: int = 503
    delay_seconds: float = 0.0
    blocked: bool = False


@dataclass
class Arrival:
    at: float
    method: str
    path: str
    status: int | None = None


class SandboxFaults:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.faults = Faults()
        self._random = random.Random()  # noqa: S311 - chooses failures, guards nothing
        self._accepted: deque[float] = deque()
        self._arrivals: deque[Arrival] = deque(maxlen=REQUEST_LOG_SIZE)

    def admit(self, method: str, path: str) -> tuple[Arrival, Response | None]:
        """Log an arriving API request; return its log entry and the fault answer, if any."""
        now = time.monotonic()
        arrival = Arrival(now, method, path)
        with self._lock:
            self._arrivals.append(arrival)
            faults = self.faults
            if faults.blocked:
                return arrival, _problem(HTTPStatus.FORBIDDEN, "Account is blocked (fault)")
            if faults.storm_429 > 0:
                faults.storm_429 -= 1
                return arrival, _too_many(faults.retry_after, "Too many requests (429 storm)")
            while self._accepted and self._accepted[0] <= now - RATE_WINDOW_SECONDS:
                self._accepted.popleft()
            if faults.rate_limit and len(self._accepted) >= KOMMO_REQUESTS_PER_SECOND:
                return arrival, _too_many(1, "Too many requests: at most 7 per second")
            self._accepted.append(now)
            if faults.errors_5xx > 0 or self._random.random() < faults.error_rate_5xx:
                faults.errors_5xx = max(0, faults.errors_5xx - 1)
                return arrival, _problem(faults.error_status, "Internal error (fault)")
        return arrival, None

    def answered(self, arrival: Arrival, status: int) -> None:
        with self._lock:
            arrival.status = status

    def arrivals(self) -> list[Arrival]:
        with self._lock:
            return [Arrival(a.at, a.method, a.path, a.status) for a in self._arrivals]

    def forget_arrivals(self) -> None:
        with self._lock:
            self._arrivals.clear()

    def reset(self) -> None:
        with self._lock:
            self.faults = Faults()
            self._accepted.clear()


class FaultsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rate_limit: bool | None = None
    storm_429: int | None = Field(default=None, ge=0)
    retry_after: int | None = Field(default=None, ge=0, le=3600)
    errors_5xx: int | None = Field(default=None, ge=0)
    error_rate_5xx: float | None = Field(default=None, ge=0, le=1)
    error_status: int | None = Field(default=None, ge=500, le=599)
    delay_seconds: float | None = Field(default=None, ge=0, le=60)
    blocked: bool | None = None
    revoke_tokens: bool = False
    expire_access_tokens: bool = False


def install_faults(app: FastAPI) -> None:
    """Kommo's limit, the fault switches and the arrival log for a sandbox app."""
    app.state.faults = SandboxFaults()
    app.include_router(router)
    app.add_middleware(FaultyApi)


router = APIRouter(prefix="/sandbox/faults", include_in_schema=False)


def _state(request: Request) -> SandboxFaults:
    state: SandboxFaults = request.app.state.faults
    return state


@router.get("")
async def show_faults(request: Request) -> Response:
    return JSONResponse(asdict(_state(request).faults))


@router.post("")
async def switch_faults(request: Request, body: FaultsIn) -> Response:
    state = _state(request)
    changes = body.model_dump(exclude_none=True, exclude={"revoke_tokens", "expire_access_tokens"})
    for name, value in changes.items():
        setattr(state.faults, name, value)
    oauth = getattr(request.app.state, "oauth", None)
    if body.revoke_tokens and oauth is not None:
        oauth.revoke_all()
    if body.expire_access_tokens and oauth is not None:
        oauth.expire_access_tokens()
    return JSONResponse(asdict(state.faults))


@router.delete("")
async def clear_faults(request: Request) -> Response:
    _state(request).reset()
    return Response(status_code=HTTPStatus.NO_CONTENT)


@router.get("/requests")
async def arrivals(request: Request) -> Response:
    return JSONResponse({"requests": [asdict(a) for a in _state(request).arrivals()]})


@router.delete("/requests")
async def forget_arrivals(request: Request) -> Response:
    _state(request).forget_arrivals()
    return Response(status_code=HTTPStatus.NO_CONTENT)


class FaultyApi:
    """Every `/api/v4` request passes here first: logged, limited, perhaps failed or slowed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state: SandboxFaults = scope["app"].state.faults
        if scope["path"] == "/oauth2/access_token":  # slow like the rest; not limited, not logged
            if state.faults.delay_seconds > 0:
                await asyncio.sleep(state.faults.delay_seconds)
            await self.app(scope, receive, send)
            return
        if not scope["path"].startswith("/api/v4/"):
            await self.app(scope, receive, send)
            return
        arrival, fault = state.admit(scope["method"], scope["path"])
        delay = state.faults.delay_seconds

        async def send_logged(message: Message) -> None:
            if message["type"] == "http.response.start":
                state.answered(arrival, int(message["status"]))
            await send(message)

        if delay > 0:
            await asyncio.sleep(delay)
        if fault is not None:
            await fault(scope, receive, send_logged)
            return
        await self.app(scope, receive, send_logged)


def _too_many(retry_after: int, detail: str) -> Response:
    response = _problem(HTTPStatus.TOO_MANY_REQUESTS, detail)
    response.headers["Retry-After"] = str(retry_after)
    return response


def _problem(status: int, detail: str) -> Response:
    body: dict[str, Any] = {
        "title": HTTPStatus(status).phrase,
        "type": f"https://httpstatus.es/{int(status)}",
        "status": int(status),
        "detail": detail,
    }
    return JSONResponse(body, status_code=status, media_type="application/problem+json")
