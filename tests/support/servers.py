"""Serve an ASGI app over real HTTP for the length of a test.

Tests talk to the sandbox and the fakes through a real socket, so what they exercise is what
production does: httpx's transport, uvicorn's parsing, real status lines and headers.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress

import uvicorn
from starlette.types import ASGIApp

STARTUP_TIMEOUT_SECONDS = 10.0
# Requests still in flight when the test ends (a deliberately slow fake, say) get this long
# before they are cancelled, so stopping the server never hangs a test run.
SHUTDOWN_GRACE_SECONDS = 1
# uvicorn looks for a stop request every 0.1 s and pauses 0.1 s more while stopping; with two
# or three servers in most integration tests that was a third of the suite's time.
POLL_SECONDS = 0.005


class _PromptServer(uvicorn.Server):
    """uvicorn's server, stopping as soon as asked: the same steps, polled more often."""

    async def main_loop(self) -> None:
        counter = 0
        while not await self.on_tick(counter):
            counter = (counter + 1) % 864000
            await asyncio.sleep(POLL_SECONDS)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        with suppress(TimeoutError):
            await asyncio.wait_for(self._drain(), timeout=SHUTDOWN_GRACE_SECONDS)
        for task in self.server_state.tasks:
            task.cancel(msg="test server stopped")
        await self.lifespan.shutdown()

    async def _drain(self) -> None:
        # uvicorn signals no event when its last connection or task ends: polling it is.
        while self.server_state.connections or self.server_state.tasks:  # noqa: ASYNC110
            await asyncio.sleep(POLL_SECONDS)
        for server in self.servers:
            await server.wait_closed()


@contextmanager
def serve_app(app: ASGIApp) -> Iterator[str]:
    """Run `app` with uvicorn on a free 127.0.0.1 port in a thread; yield its base URL.

    The server runs in its own thread with its own event loop, so a test's loop can call it
    without either blocking the other, from sync and async tests alike.
    """
    # Port 0 lets the OS pick a free port at bind time: no race with other test processes.
    # lifespan="on" makes a failing app startup stop the server instead of being logged away.
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )
    server = _PromptServer(config)
    thread = threading.Thread(target=server.run, name="test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("test server did not start; see uvicorn's log above")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join()
