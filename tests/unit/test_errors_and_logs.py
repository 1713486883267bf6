"""The contract's error body for every failure, and JSON log lines that carry the request id."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator

import httpx
import pytest
import structlog
from fastapi import FastAPI
from pydantic import BaseModel

from agent_platform.kit.errors import ConflictError, install_error_handlers
from agent_platform.ops.logging import configure_logging
from agent_platform.ops.request_context import RequestContextMiddleware


class Order(BaseModel):
    quantity: int
    email: str


def make_app() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.add_middleware(RequestContextMiddleware)

    @app.post("/orders")
    async def create_order(order: Order) -> dict[str, int]:
        return {"quantity": order.quantity}

    @app.post("/conflict")
    async def conflict() -> None:
        raise ConflictError("Already there.", details={"id": 7})

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("database password is hunter2")

    return app


@pytest.fixture
def client() -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=make_app(), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://test")


async def test_validation_errors_are_422_with_field_paths(client: httpx.AsyncClient) -> None:
    response = await client.post("/orders", json={"quantity": "many"})
    assert response.status_code == 422
    body = response.json()
    assert body["error"]["code"] == "validation_error"
    paths = {detail["path"] for detail in body["error"]["details"]}
    assert paths == {"body.quantity", "body.email"}
    assert body["request_id"] == response.headers["x-request-id"]
    assert body["timestamp"].endswith("+00:00")


async def test_application_errors_keep_their_status_code_and_details(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/conflict")
    assert response.status_code == 409
    assert response.json()["error"] == {
        "code": "conflict",
        "message": "Already there.",
        "details": {"id": 7},
    }


async def test_unexpected_errors_are_500_with_the_request_id_and_no_internals(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/boom", headers={"X-Request-ID": "req-42"})
    assert response.status_code == 500
    body = response.json()
    assert body["error"]["code"] == "internal_error"
    assert body["request_id"] == "req-42"
    assert "hunter2" not in response.text
    assert "RuntimeError" not in response.text


async def test_a_request_id_that_could_forge_log_content_is_replaced(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post("/conflict", headers={"X-Request-ID": 'x" level="critical'})
    assert response.headers["x-request-id"] != 'x" level="critical'
    assert len(response.headers["x-request-id"]) == 32


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


@pytest.mark.usefixtures("restore_logging")
def test_log_lines_are_json_with_the_bound_ids(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(service="api", level="INFO", fmt="json")
    with structlog.contextvars.bound_contextvars(request_id="req-1", job_id=5):
        structlog.get_logger("test").info("reply_sent", lead_id=1002)
        logging.getLogger("library").warning("from stdlib logging")
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert lines[0] | {"timestamp": None} == {
        "message": "reply_sent",
        "level": "info",
        "logger": "test",
        "service": "api",
        "request_id": "req-1",
        "job_id": 5,
        "lead_id": 1002,
        "timestamp": None,
    }
    assert lines[0]["timestamp"].endswith("Z")
    assert (lines[1]["message"], lines[1]["request_id"], lines[1]["service"]) == (
        "from stdlib logging",
        "req-1",
        "api",
    )
