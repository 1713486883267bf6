"""One request id follows a customer's message from Kommo's webhook to the job it caused and on
to the Kommo calls that job makes: the api and a worker run as the operator runs them (JSON
logs on stderr), the sandbox plays Kommo and the lead, and the test reads the log lines."""

from __future__ import annotations

import json
import secrets
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.types import ASGIApp, Receive, Scope, Send

from agent_platform.config import Settings
from agent_platform.crm.kommo.metrics import endpoint_template
from agent_platform.crm.sandbox.app import create_sandbox_app
from agent_platform.crm.sandbox.store import DEMO_LEAD_ID
from agent_platform.services import Services
from tests.conftest import free_port
from tests.support.clients import sandbox_sending_webhooks
from tests.support.factories import create_connected_agent
from tests.support.processes import RunningProcess, eventually_async, running, settings_env
from tests.support.servers import serve_app

WEBHOOK_ROUTE = "/webhooks/kommo/{connection_token}"
START_TIMEOUT = 60.0
FLOW_TIMEOUT = 30.0


class RequestIdRecorder:
    """The sandbox behind a recorder of each request's method, path and X-Request-Id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen: list[tuple[str, str, str | None]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            request_id = headers.get(b"x-request-id")
            self.seen.append(
                (scope["method"], scope["path"], request_id.decode() if request_id else None)
            )
        await self.app(scope, receive, send)


@pytest.fixture
def kommo() -> Iterator[tuple[str, str, RequestIdRecorder]]:
    """(base URL, access token, recorder) of a sandbox that records the ids it is sent."""
    token = secrets.token_urlsafe(16)
    recorder = RequestIdRecorder(create_sandbox_app(token))
    with serve_app(recorder) as url:
        yield url, token, recorder


def json_lines(process: RunningProcess) -> list[dict[str, Any]]:
    """The process's log lines (stderr); anything that is not a JSON object is skipped."""
    lines = []
    for line in process.stderr().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


async def test_one_request_id_follows_a_message_from_webhook_to_job_to_kommo(
    settings: Settings,
    services: Services,
    kommo: tuple[str, str, RequestIdRecorder],
    tmp_path: Path,
) -> None:
    kommo_url, kommo_token, recorder = kommo
    connected = await create_connected_agent(services, kommo_url=kommo_url, kommo_token=kommo_token)
    api_port = free_port()
    env = settings_env(settings)
    with (
        running(["api", "--port", str(api_port)], env=env, cwd=tmp_path, name="api") as api,
        running(["worker"], env=env, cwd=tmp_path, name="worker") as worker,
    ):
        api.wait_for_stdout("GPT Agent Platform is running at", timeout=START_TIMEOUT)
        destination = f"http://127.0.0.1:{api_port}/webhooks/kommo/{connected.webhook_token}"
        async with sandbox_sending_webhooks(
            (kommo_url, kommo_token), destination, ["add_message"]
        ) as sandbox:
            said = await sandbox.post(
                f"/sandbox/leads/{DEMO_LEAD_ID}/messages",
                data={"text": "How much is it?", "author": "customer"},
            )
            assert said.status_code == 303, said.text

            def webhook_line() -> dict[str, Any] | None:
                return next(
                    (
                        line
                        for line in json_lines(api)
                        if line["message"] == "request" and line.get("route") == WEBHOOK_ROUTE
                    ),
                    None,
                )

            request = await eventually_async(
                webhook_line,
                within=FLOW_TIMEOUT,
                message=lambda: "the api logged no webhook request: " + api.describe(),
            )
            request_id = request["request_id"]

            def traced() -> list[dict[str, Any]]:
                return [line for line in json_lines(worker) if line.get("request_id") == request_id]

            await eventually_async(
                lambda: any(line["message"] == "job_succeeded" for line in traced()),
                within=FLOW_TIMEOUT,
                message=lambda: (
                    f"no finished job with request id {request_id}: " + worker.describe()
                ),
            )
            notes = (await sandbox.get("/sandbox/notes")).json()["notes"]
        assert api.stop(signal.SIGTERM) == 0, api.describe()
        assert worker.stop(signal.SIGTERM) == 0, worker.describe()

    job_lines = traced()  # all of them, now that the worker has stopped
    assert (request["method"], request["status"], request["service"]) == ("POST", 200, "api")
    events = [(line["message"], line.get("task")) for line in job_lines]
    assert ("job_started", "answer_incoming_message") in events
    assert ("job_succeeded", "answer_incoming_message") in events
    calls = [line for line in job_lines if line["message"] == "kommo_request"]
    assert calls, f"no Kommo call logged with request id {request_id}: {events}"
    for call in calls:
        assert call["service"] == "worker"
        assert call["endpoint"].startswith("/api/v4/")
        assert isinstance(call["status"], int)
        assert call["duration_ms"] >= 0
        assert call["job_id"] is not None
    # The reply reached the lead, and Kommo received the id with each call the job made.
    assert len(notes) == 1
    assert ("POST", "/api/v4/leads/notes") in [(c["method"], c["endpoint"]) for c in calls]
    received = [
        (method, endpoint_template(path))
        for method, path, seen_id in recorder.seen
        if seen_id == request_id
    ]
    assert sorted(received) == sorted((c["method"], c["endpoint"]) for c in calls)
