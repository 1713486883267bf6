"""A platform worker running in the test's event loop, for as long as a block lasts."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from agent_platform.queue.worker import run_worker
from agent_platform.services import Services


@contextlib.asynccontextmanager
async def running_worker(services: Services) -> AsyncIterator[None]:
    task = asyncio.create_task(run_worker(services, health_host="127.0.0.1"))
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
