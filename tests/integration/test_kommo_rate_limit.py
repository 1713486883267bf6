"""Kommo's 7 requests per second per account, kept by every process together.

The evidence is the sandbox's own log of arriving requests: in no window of one second do
more than seven arrive, and none is answered 429.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from agent_platform.config import Settings
from agent_platform.crm.kommo.client import KommoClient
from agent_platform.crm.kommo.session import RATE_LIMIT_WAITS, call_kommo
from agent_platform.services import Services
from tests.support.factories import ConnectedAgent
from tests.support.kommo_oauth import api_arrivals, most_in_any_window
from tests.support.processes import settings_env

ROOT = Path(__file__).resolve().parents[2]
KOMMO_LIMIT = 7
PROCESS_TIMEOUT_SECONDS = 120


async def account_id(kommo: KommoClient) -> int:
    return (await kommo.account.get()).id


def assert_kept_to_the_limit(sandbox_url: str, expected_requests: int) -> None:
    arrivals = api_arrivals(sandbox_url)
    assert len(arrivals) == expected_requests
    assert {arrival["status"] for arrival in arrivals} == {200}
    assert most_in_any_window([arrival["at"] for arrival in arrivals]) <= KOMMO_LIMIT


async def test_three_processes_sharing_an_account_keep_to_seven_per_second(
    settings: Settings,
    connected: ConnectedAgent,
    sandbox: tuple[str, str],
    redis_url: str,
    tmp_path: Path,
) -> None:
    env = settings_env(settings, REDIS_URL=redis_url)
    logs = [tmp_path / f"worker-{index}.log" for index in range(3)]
    workers = []
    for log in logs:
        with log.open("wb") as output:
            workers.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "tests.support.kommo_load",
                    str(connected.connection_id),
                    "12",
                    "3",
                    env=env,
                    cwd=ROOT,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        async with asyncio.timeout(PROCESS_TIMEOUT_SECONDS):
            codes = [await worker.wait() for worker in workers]
    finally:
        for worker in workers:
            if worker.returncode is None:
                worker.kill()
                await worker.wait()
    said = "\n".join(log.read_text()[-2000:] for log in logs)
    assert codes == [0, 0, 0], said

    assert_kept_to_the_limit(sandbox[0], expected_requests=36)


async def test_one_process_without_redis_keeps_to_seven_per_second(
    services: Services, connected: ConnectedAgent, sandbox: tuple[str, str]
) -> None:
    assert services.redis is None
    waits_before = RATE_LIMIT_WAITS._value.get()

    async def calls() -> None:
        for _ in range(8):
            await call_kommo(services, connected.connection_id, account_id)

    await asyncio.gather(calls(), calls(), calls())

    assert_kept_to_the_limit(sandbox[0], expected_requests=24)
    assert RATE_LIMIT_WAITS._value.get() > waits_before


async def test_the_sandbox_answers_429_to_a_client_over_the_limit(
    sandbox: tuple[str, str],
) -> None:
    headers = {"Authorization": f"Bearer {sandbox[1]}"}
    async with httpx.AsyncClient(base_url=sandbox[0], headers=headers) as kommo:
        answers = await asyncio.gather(*(kommo.get("/api/v4/account") for _ in range(20)))

    refused = [answer for answer in answers if answer.status_code == 429]
    assert refused
    assert {answer.headers["Retry-After"] for answer in refused} == {"1"}
    assert refused[0].headers["content-type"] == "application/problem+json"
    accepted = [a["at"] for a in api_arrivals(sandbox[0]) if a["status"] == 200]
    assert most_in_any_window(accepted) <= KOMMO_LIMIT


@pytest.mark.parametrize("faults", [{"rate_limit": False}])
async def test_the_sandbox_limit_can_be_switched_off(
    sandbox: tuple[str, str], faults: dict[str, bool]
) -> None:
    headers = {"Authorization": f"Bearer {sandbox[1]}"}
    async with httpx.AsyncClient(base_url=sandbox[0], headers=headers) as kommo:
        (await kommo.post("/sandbox/faults", json=faults)).raise_for_status()
        answers = await asyncio.gather(*(kommo.get("/api/v4/account") for _ in range(20)))

    assert {answer.status_code for answer in answers} == {200}
