"""Per-request context: the request id (accepted or generated, echoed), logs and HTTP metrics."""

from __future__ import annotations

import re
import time
import uuid

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_platform.ops import metrics

REQUEST_ID_HEADER = "x-request-id"
# A caller's id is kept only when it is short and plain, so it cannot forge log content.
_ACCEPTABLE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")

log = structlog.get_logger("http")


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", []):
        if name == REQUEST_ID_HEADER.encode():
            candidate = value.decode("latin-1")
            return candidate if _ACCEPTABLE_REQUEST_ID.match(candidate) else None
    return None


def _route_template(scope: Scope) -> str:
    # The template ("/webhooks/kommo/{connection_token}"), never the raw path: secrets and ids
    # in paths must not become label values.
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"].append((REQUEST_ID_HEADER.encode(), request_id.encode()))
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                route = _route_template(scope)
                method = scope["method"]
                metrics.HTTP_REQUESTS.labels(route=route, method=method, status=str(status)).inc()
                metrics.HTTP_DURATION.labels(route=route, method=method).observe(elapsed)
                log.info(
                    "request",
                    method=method,
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )
