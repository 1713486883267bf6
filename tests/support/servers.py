"""Serve an ASGI app over real HTTP for the length of a test.

Tests talk to the sandbox and the fakes through a real socket, so what they exercise is what
production does: httpx's transport, uvicorn's parsing, real status lines and headers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.types import ASGIApp

STARTUP_TIMEOUT_SECONDS = 10.0
# Requests still in flight when the test ends (a deliberately slow fake, say) get this long
# before they are cancelled, so stopping the server never hangs a test run.
SHUTDOWN_GRACE_SECONDS = 1


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
    server = uvicorn.Server(config)
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
