"""A destination for what the sandbox sends (webhooks, Salesbot widget calls), over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.support.servers import serve_app


@dataclass(frozen=True)
class Received:
    path: str
    content_type: str
    body: str


@dataclass
class Receiver:
    """Records every POST and answers `status` after `delay` seconds."""

    status: int = 200
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)

    def at(self, path: str) -> list[Received]:
        return [request for request in self.received if request.path == path]

    @contextmanager
    def serving(self) -> Iterator[str]:
        """Serve the receiver; yields its base URL."""
        with serve_app(
            Starlette(routes=[Route("/{path:path}", self._receive, methods=["POST"])])
        ) as url:
            yield url

    async def _receive(self, request: Request) -> Response:
        body = (await request.body()).decode()
        self.received.append(
            Received(request.url.path, request.headers.get("content-type", ""), body)
        )
        await asyncio.sleep(self.delay)
        return Response(status_code=self.status)
