"""`agent-platform agent eval` as a real process against the test database and the fake
OpenAI server: the table and the JSON, exit codes 0 / 1 / 2, bad datasets named by line."""

from __future__ import annotations

import asyncio
import json
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent_platform.config import Settings
from agent_platform.services import Services
from tests.support.agents import created, patched, published
from tests.support.knowledge import create_tenant
from tests.support.processes import run_cli, settings_env

PASSING = {"name": "prices", "messages": ["How much?"], "expect": {"reply_contains": ["USD"]}}
FAILING = {"name": "discount", "messages": ["Discount?"], "expect": {"reply_contains": ["10%"]}}


@pytest.fixture
async def agent_id(services: Services, api_url: str) -> AsyncIterator[str]:
    """A published agent (version 1) with a draft version 2 that hands everything over."""
    tenant = await create_tenant(services)
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as api:
        agent = await created(api, tenant.headers, name="Seller")
        await published(api, tenant.headers, agent["id"], 1)
        await patched(api, tenant.headers, agent["id"], handoff={"keywords": ["how much"]})
        yield str(agent["id"])


def dataset(tmp_path: Path, *lines: dict[str, Any] | str) -> Path:
    path = tmp_path / "cases.jsonl"
    path.write_text("\n".join(x if isinstance(x, str) else json.dumps(x) for x in lines) + "\n")
    return path


async def agent_eval(
    settings: Settings, tmp_path: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    # In a thread: the fake LLM and the API the fixtures serve share this test's event loop.
    return await asyncio.to_thread(
        run_cli, ["agent", "eval", *args], env=settings_env(settings), cwd=tmp_path / "cwd"
    )


async def test_all_passing_exits_0_with_a_table_and_a_summary(
    settings: Settings, agent_id: str, tmp_path: Path
) -> None:
    done = await agent_eval(
        settings, tmp_path, agent_id, "--dataset", str(dataset(tmp_path, PASSING))
    )

    assert done.returncode == 0, done.stderr
    assert "prices" in done.stdout
    assert "passed" in done.stdout
    assert "1 passed, 0 failed, 1 cases" in done.stdout


async def test_a_failing_case_exits_1_and_json_tells_why(
    settings: Settings, agent_id: str, tmp_path: Path
) -> None:
    path = dataset(tmp_path, PASSING, FAILING)

    done = await agent_eval(settings, tmp_path, agent_id, "--dataset", str(path), "--json")

    assert done.returncode == 1, done.stderr
    report = json.loads(done.stdout)
    assert (report["version"], report["passed"], report["failed"]) == (1, 1, 1)
    assert [(c["name"], c["failures"]) for c in report["cases"]] == [
        ("prices", []),
        ("discount", ["no reply contains '10%'"]),
    ]


async def test_a_draft_version_is_evaluated_by_number(
    settings: Settings, agent_id: str, tmp_path: Path
) -> None:
    path = dataset(tmp_path, PASSING | {"expect": {"handoff": True}})

    done = await agent_eval(
        settings, tmp_path, agent_id, "--dataset", str(path), "--version", "2", "--json"
    )

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["version"] == 2


@pytest.mark.parametrize(
    ("lines", "said"),
    [
        ((PASSING, "{oops"), "line 2: not JSON"),
        ((PASSING, "", PASSING | {"expect": {"silence": True}}), "line 3: expect.silence"),
    ],
)
async def test_a_bad_dataset_exits_2_naming_the_line(
    settings: Settings, agent_id: str, tmp_path: Path, lines: tuple[Any, ...], said: str
) -> None:
    done = await agent_eval(
        settings, tmp_path, agent_id, "--dataset", str(dataset(tmp_path, *lines))
    )

    assert done.returncode == 2
    assert said in done.stderr
    assert done.stdout == ""


async def test_an_unknown_agent_or_version_or_file_exits_2(
    settings: Settings, agent_id: str, tmp_path: Path
) -> None:
    path = str(dataset(tmp_path, PASSING))

    unknown = await agent_eval(settings, tmp_path, str(uuid.uuid4()), "--dataset", path)
    no_version = await agent_eval(settings, tmp_path, agent_id, "--dataset", path, "--version", "7")
    no_file = await agent_eval(settings, tmp_path, agent_id, "--dataset", str(tmp_path / "none"))

    assert (unknown.returncode, no_version.returncode, no_file.returncode) == (2, 2, 2)
    assert "No agent" in unknown.stderr
    assert "no version 7" in no_version.stderr
