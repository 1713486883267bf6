"""The event loop the processes run on: uvloop where it is installed, asyncio's otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any


def run_event_loop(coroutine: Coroutine[Any, Any, None]) -> None:
    # uvloop roughly halves the event loop's own cost per request; Windows has no uvloop.
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
        return
    uvloop.run(coroutine)
