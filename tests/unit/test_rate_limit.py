"""kit.rate_limit: turns counted from when they are given until a period after they are done.

The local limiter runs on a simulated clock here, so what is checked is the rule, not the
speed of this machine; the Redis limiter runs against a real Redis.
"""

from __future__ import annotations

import asyncio
import heapq
import uuid
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis

from agent_platform.kit.rate_limit import LocalRateLimiter, RedisRateLimiter, create_rate_limiter
from tests.support.kommo_oauth import most_in_any_window

LIMIT = 7
PERIOD = 1.0


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_seven_turns_at_once_then_the_eighth_a_period_after_the_first_is_done() -> None:
    clock = Clock()
    limiter = LocalRateLimiter(LIMIT, PERIOD, clock=clock)
    tickets = [limiter.take("account") for _ in range(LIMIT)]
    assert all(ticket is not None and delay == 0 for ticket, delay in tickets)

    ticket, delay = limiter.take("account")
    assert ticket is None  # all seven still running: look again soon
    assert 0 < delay < PERIOD

    clock.now = 0.3
    first = tickets[0][0]
    assert first is not None
    limiter.done("account", first)
    clock.now = 0.5
    ticket, delay = limiter.take("account")
    assert ticket is None
    assert delay == pytest.approx(0.3 + PERIOD - 0.5)

    clock.now = 0.3 + PERIOD
    assert limiter.take("account")[0] is not None


def test_keys_do_not_share_turns() -> None:
    limiter = LocalRateLimiter(LIMIT, PERIOD, clock=Clock())
    for _ in range(LIMIT):
        limiter.take("one")

    assert limiter.take("one")[0] is None
    assert limiter.take("two")[0] is not None


@dataclass(order=True)
class Event:
    at: float
    order: int
    kind: str = field(compare=False)
    worker: int = field(compare=False)
    ticket: int | None = field(default=None, compare=False)


@settings(max_examples=60, deadline=None)
@given(
    workers=st.integers(min_value=1, max_value=12),
    delays=st.lists(st.floats(min_value=0, max_value=0.8), min_size=40, max_size=40),
    durations=st.lists(st.floats(min_value=0, max_value=0.5), min_size=40, max_size=40),
)
def test_however_late_requests_arrive_no_server_window_holds_more_than_the_limit(
    workers: int, delays: list[float], durations: list[float]
) -> None:
    """Workers ask for turns as fast as they can; each request then travels `delay` before
    the server sees it and `duration` more before its answer is in."""
    clock = Clock()
    limiter = LocalRateLimiter(LIMIT, PERIOD, clock=clock)
    events = [Event(0.0, worker, "try", worker) for worker in range(workers)]
    heapq.heapify(events)
    arrivals: list[float] = []
    order = workers
    while events and len(arrivals) < len(delays):
        event = heapq.heappop(events)
        clock.now = event.at
        order += 1
        if event.kind == "done":
            assert event.ticket is not None
            limiter.done("account", event.ticket)
            heapq.heappush(events, Event(event.at, order, "try", event.worker))
            continue
        ticket, wait = limiter.take("account")
        if ticket is None:
            heapq.heappush(events, Event(event.at + wait, order, "try", event.worker))
            continue
        index = len(arrivals)
        arrivals.append(event.at + delays[index])
        done_at = event.at + delays[index] + durations[index]
        heapq.heappush(events, Event(done_at, order, "done", event.worker, ticket))

    assert most_in_any_window(arrivals, PERIOD) <= LIMIT


async def test_the_local_limiter_waits_rather_than_fails() -> None:
    pauses: list[float] = []
    clock = Clock()

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        clock.now += seconds

    limiter = LocalRateLimiter(2, PERIOD, clock=clock, sleep=sleep)
    first = await limiter.acquire("account")
    await limiter.acquire("account")
    await first.done()

    third = await limiter.acquire("account")

    assert third.waited == pytest.approx(sum(pauses))
    assert PERIOD <= third.waited < PERIOD + 0.01


async def test_redis_turns_are_shared_by_separate_clients(redis_url: str) -> None:
    key = f"test-{uuid.uuid4().hex}"
    clients = [Redis.from_url(redis_url) for _ in range(3)]
    limiters = [RedisRateLimiter(client, LIMIT, PERIOD) for client in clients]
    try:
        turns = await asyncio.gather(*(limiters[i % 3].acquire(key) for i in range(LIMIT)))
        assert [turn.waited for turn in turns] == [0.0] * LIMIT

        # Every turn is held by a running request: the eighth must wait for one to be done.
        waiting = asyncio.create_task(limiters[0].acquire(key))
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await turns[0].done()
        eighth = await asyncio.wait_for(waiting, timeout=10)
        assert eighth.waited > 0
        await asyncio.gather(*(turn.done() for turn in [*turns[1:], eighth]))
    finally:
        for client in clients:
            await client.aclose()


async def test_with_redis_unreachable_the_limiter_keeps_its_own_count() -> None:
    unreachable = Redis.from_url("redis://127.0.0.1:9/0", socket_connect_timeout=0.5)
    limiter = create_rate_limiter(unreachable, 2, PERIOD)
    try:
        first = await limiter.acquire("account")
        second = await limiter.acquire("account")
        assert (first.waited, second.waited) == (0.0, 0.0)
        await first.done()
        await second.done()
    finally:
        await unreachable.aclose()


def test_without_redis_the_limiter_is_the_local_one() -> None:
    assert isinstance(create_rate_limiter(None, LIMIT, PERIOD), LocalRateLimiter)
