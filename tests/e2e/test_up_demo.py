"""`agent-platform up --demo` as a user runs it: embedded PostgreSQL, api, worker, sandbox.

No DATABASE_URL is given, so the command starts its own PostgreSQL under DATA_DIR: this is
the path a new user takes, and the one that must leave no server behind when it stops.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from pgserver.utils import PostmasterInfo

from agent_platform.crm.sandbox.store import DEMO_LEAD_ID
from agent_platform.demo import DEMO_FAQS
from tests.conftest import free_port
from tests.fakes.openai_server import create_fake_openai_app
from tests.support.factories import message_form
from tests.support.processes import (
    RunningProcess,
    eventually,
    platform_env,
    postgres_processes,
    running,
    stop_leftover_postgres,
)
from tests.support.servers import serve_app

LLM_REPLY = "Our demo plan costs 42 USD a month."
READY_LINE = "GPT Agent Platform is running at"
STARTUP_TIMEOUT = 60.0
REPLY_TIMEOUT = 30.0
DEMO_KEYS = {
    "api_url",
    "admin_email",
    "admin_password",
    "api_key",
    "agent_id",
    "webhook_url",
    "kommo_base_url",
    "kommo_access_token",
}


@pytest.fixture
def fake_llm() -> Iterator[str]:
    with serve_app(create_fake_openai_app(reply=LLM_REPLY)) as url:
        yield url


@contextmanager
def demo_platform(
    data_dir: Path, workdir: Path, *, llm_url: str, llm_key: str | None
) -> Iterator[tuple[RunningProcess, dict[str, Any]]]:
    """`up --demo` on free ports; yields the process once it is ready, and its demo.json."""
    api_port, sandbox_port = free_port(), free_port()
    env = platform_env(
        DATA_DIR=str(data_dir),
        LLM_BASE_URL=f"{llm_url}/v1",
        LLM_DEFAULT_MODEL="test/model",
        OPENROUTER_API_KEY=llm_key,
        WORKER_HEALTH_PORT=str(free_port()),
    )
    args = ["up", "--demo", "--port", str(api_port), "--sandbox-port", str(sandbox_port)]
    try:
        with running(args, env=env, cwd=workdir, name="up") as process:
            process.wait_for_stdout(READY_LINE, timeout=STARTUP_TIMEOUT)
            demo = json.loads((data_dir / "demo.json").read_text())
            yield process, demo
    finally:
        stop_leftover_postgres(data_dir / "postgres")


def send_message(demo: dict[str, Any], message_id: str, text: str) -> None:
    response = httpx.post(
        demo["webhook_url"], data=message_form(message_id, text, lead_id=DEMO_LEAD_ID)
    )
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1


def sandbox_notes(demo: dict[str, Any]) -> list[dict[str, Any]]:
    response = httpx.get(f"{demo['kommo_base_url']}/sandbox/notes")
    response.raise_for_status()
    notes: list[dict[str, Any]] = response.json()["notes"]
    return notes


def wait_for_note(demo: dict[str, Any], process: RunningProcess) -> dict[str, Any]:
    def first_note() -> dict[str, Any] | None:
        notes = sandbox_notes(demo)
        return notes[0] if notes else None

    return eventually(
        first_note,
        within=REPLY_TIMEOUT,
        message=lambda: "no reply note in the sandbox: " + process.describe(),
    )


def embedded_database_url(pgdata: Path) -> str:
    info = PostmasterInfo.read_from_pgdata(pgdata)
    assert info is not None, f"no postmaster.pid in {pgdata}: the embedded server is not running"
    return info.get_uri()


def inbox_statuses(pgdata: Path) -> list[str]:
    with psycopg.connect(embedded_database_url(pgdata)) as connection:
        # Only customers' messages: the sandbox also sends back the note our reply made.
        rows = connection.execute(
            "SELECT status FROM inbox_events WHERE dedupe_key LIKE 'message:%'"
        ).fetchall()
    return [row[0] for row in rows]


def test_demo_answers_a_webhook_and_stops_cleanly(tmp_path: Path, fake_llm: str) -> None:
    data_dir = tmp_path / "data"
    pgdata = data_dir / "postgres"
    with demo_platform(data_dir, tmp_path, llm_url=fake_llm, llm_key="test-key") as (
        process,
        demo,
    ):
        assert set(demo) == DEMO_KEYS
        assert all(demo.values())
        assert (pgdata / "PG_VERSION").exists(), "no DATABASE_URL: PostgreSQL runs under DATA_DIR"
        assert postgres_processes(pgdata)

        health = httpx.get(f"{demo['api_url']}/api/health")
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "ok"

        send_message(demo, "demo-msg-1", "How much is the demo plan?")
        note = wait_for_note(demo, process)
        assert note["entity_type"] == "leads"
        assert note["entity_id"] == DEMO_LEAD_ID
        assert note["params"]["text"] == LLM_REPLY
        eventually(
            lambda: inbox_statuses(pgdata) == ["handled"],
            within=REPLY_TIMEOUT,
            message=lambda: f"inbox is {inbox_statuses(pgdata)}",
        )
        assert len(sandbox_notes(demo)) == 1

        exit_code = process.stop(signal.SIGTERM)
        assert exit_code == 0, process.describe()
        assert not (pgdata / "postmaster.pid").exists(), "the embedded PostgreSQL still runs"
        assert postgres_processes(pgdata) == []
        assert "Traceback" not in process.stderr()


def test_demo_without_llm_key_answers_from_its_faq(tmp_path: Path, fake_llm: str) -> None:
    data_dir = tmp_path / "data"
    with demo_platform(data_dir, tmp_path, llm_url=fake_llm, llm_key=None) as (process, demo):
        send_message(demo, "demo-offline-1", "Do you ship to Europe?")
        note = wait_for_note(demo, process)
        assert note["params"]["text"] == dict(DEMO_FAQS)["Do you ship to Europe?"]
        assert httpx.get(f"{fake_llm}/_fake/requests").json() == []
        assert process.stop(signal.SIGTERM) == 0, process.describe()


def test_restart_on_the_same_data_dir_reuses_the_demo(tmp_path: Path, fake_llm: str) -> None:
    data_dir = tmp_path / "data"
    with demo_platform(data_dir, tmp_path, llm_url=fake_llm, llm_key="test-key") as (
        process,
        first,
    ):
        assert process.stop(signal.SIGTERM) == 0, process.describe()
    with demo_platform(data_dir, tmp_path, llm_url=fake_llm, llm_key="test-key") as (
        process,
        second,
    ):
        # The same organization, agent and credentials; only the addresses follow the ports.
        for key in ("admin_email", "admin_password", "api_key", "agent_id", "kommo_access_token"):
            assert second[key] == first[key], key
        assert second["webhook_url"].rsplit("/", 1)[-1] == first["webhook_url"].rsplit("/", 1)[-1]
        # The connection follows the new sandbox (a fresh, empty one): the reply arrives there.
        send_message(second, "demo-restart-1", "Hello again")
        assert wait_for_note(second, process)["params"]["text"] == LLM_REPLY
        assert process.stop(signal.SIGTERM) == 0, process.describe()
