"""automation.outbound_webhook against a real local HTTP receiver: the body and the signature a
receiver can verify, the delivery id, answers returned as they are (no redirect followed), and
no call into our own network unless configured — by literal address or by what a name resolves to.

Name resolution is answered by a fake resolver for made-up names (no test reaches real DNS),
which is also how the tests see that the connection goes to the address that was checked.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import socket
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from agent_platform.automation.outbound_webhook import (
    WebhookResponse,
    call_webhook,
    signature,
    signing_secret,
)
from agent_platform.kit.safe_fetch import UnsafeUrlError
from agent_platform.kit.transient import is_transient
from tests.support.servers import serve_app

SECRET = signing_secret("a-long-test-secret-key-for-signing-webhooks", uuid.uuid4())
PAYLOAD: dict[str, Any] = {"event": "lead_status_changed", "lead_id": 7, "name": "Сделка №7"}


@dataclass(frozen=True)
class Call:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    calls: list[Call] = field(default_factory=list)

    async def receive(self, request: Request) -> Response:
        self.calls.append(Call(request.url.path, dict(request.headers), await request.body()))
        path = request.url.path
        if path == "/fails":
            return PlainTextResponse("database is down", status_code=503)
        if path == "/moved":
            return RedirectResponse("/elsewhere", status_code=302)
        if path == "/slow":
            await asyncio.sleep(30)
        if path == "/long":
            return PlainTextResponse("x" * 50_000)
        return PlainTextResponse("thanks")


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
def receiver_url(receiver: Receiver) -> Iterator[str]:
    with serve_app(
        Starlette(routes=[Route("/{path:path}", receiver.receive, methods=["POST"])])
    ) as url:
        yield url


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Names of our choosing resolve to the addresses in this table; others as usual."""
    table: dict[str, list[str]] = {}
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host in table:
            return [
                (
                    socket.AF_INET6 if ":" in address else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (address, port),
                )
                for address in table[host]
            ]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return table


async def post(
    url: str, *, allow_private_networks: bool = True, timeout_seconds: float = 5
) -> WebhookResponse:
    return await call_webhook(
        url,
        PAYLOAD,
        secret=SECRET,
        delivery_id="run-1:3",
        timeout_seconds=timeout_seconds,
        allow_private_networks=allow_private_networks,
    )


def verify(secret: str, header: str, body: bytes) -> bool:
    """What a receiver does, written out independently of the module under test."""
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(secret.encode(), parts["t"].encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), parts["v1"])


async def test_the_payload_arrives_as_signed_json_with_its_delivery_id(
    receiver: Receiver, receiver_url: str
) -> None:
    answer = await post(f"{receiver_url}/hooks/in")
    assert answer == WebhookResponse(status_code=200, body_excerpt="thanks")
    [call] = receiver.calls
    assert call.path == "/hooks/in"
    assert call.headers["content-type"] == "application/json"
    assert json.loads(call.body) == PAYLOAD
    assert call.headers["x-agent-platform-delivery"] == "run-1:3"
    assert verify(SECRET, call.headers["x-agent-platform-signature"], call.body)
    assert not verify(SECRET, call.headers["x-agent-platform-signature"], call.body + b" ")
    other_secret = signing_secret("a-long-test-secret-key-for-signing-webhooks", uuid.uuid4())
    assert not verify(other_secret, call.headers["x-agent-platform-signature"], call.body)


def test_the_signature_covers_the_time_and_the_body() -> None:
    assert signature("s", 1700000000, b"{}") == (
        "t=1700000000,v1=" + hmac.new(b"s", b"1700000000.{}", hashlib.sha256).hexdigest()
    )
    assert signature("s", 1700000001, b"{}") != signature("s", 1700000000, b"{}")
    organization = uuid.uuid4()
    assert signing_secret("k" * 40, organization) == signing_secret("k" * 40, organization)
    assert signing_secret("k" * 40, organization) != signing_secret("j" * 40, organization)


async def test_an_error_answer_is_returned_for_the_caller_to_judge(
    receiver: Receiver, receiver_url: str
) -> None:
    assert await post(f"{receiver_url}/fails") == WebhookResponse(503, "database is down")


async def test_a_redirect_is_not_followed(receiver: Receiver, receiver_url: str) -> None:
    answer = await post(f"{receiver_url}/moved")
    assert answer.status_code == 302
    assert [call.path for call in receiver.calls] == ["/moved"]


async def test_only_an_excerpt_of_a_long_answer_is_kept(receiver_url: str) -> None:
    answer = await post(f"{receiver_url}/long")
    assert answer.body_excerpt == "x" * 2_000


async def test_loopback_and_private_addresses_are_refused_unless_allowed(
    receiver: Receiver, receiver_url: str
) -> None:
    port = httpx.URL(receiver_url).port
    for url in (f"{receiver_url}/in", f"http://localhost:{port}/in", "http://10.1.2.3/in"):
        with pytest.raises(UnsafeUrlError, match="webhooks may only call public addresses"):
            await post(url, allow_private_networks=False)
    assert receiver.calls == []
    assert (await post(f"{receiver_url}/in", allow_private_networks=True)).status_code == 200


async def test_a_name_resolving_into_our_network_is_refused(
    receiver: Receiver, receiver_url: str, fake_dns: dict[str, list[str]]
) -> None:
    port = httpx.URL(receiver_url).port
    fake_dns["hooks.example.com"] = ["93.184.216.34", "127.0.0.1"]
    fake_dns["internal.example.com"] = ["10.0.0.5"]
    with pytest.raises(
        UnsafeUrlError, match=re.escape("hooks.example.com resolves to 127.0.0.1, a loopback")
    ):
        await post(f"http://hooks.example.com:{port}/in", allow_private_networks=False)
    with pytest.raises(UnsafeUrlError, match=re.escape("resolves to 10.0.0.5, a private address")):
        await post("http://internal.example.com/in", allow_private_networks=False)
    assert receiver.calls == []


async def test_the_connection_goes_to_the_checked_address_under_the_names_host(
    receiver: Receiver, receiver_url: str, fake_dns: dict[str, list[str]]
) -> None:
    port = httpx.URL(receiver_url).port
    fake_dns["hooks.example.com"] = ["127.0.0.1"]
    assert (await post(f"http://hooks.example.com:{port}/in")).status_code == 200
    [call] = receiver.calls
    assert call.headers["host"] == f"hooks.example.com:{port}"


async def test_credentials_in_the_url_are_refused(receiver_url: str) -> None:
    with pytest.raises(UnsafeUrlError, match="cannot carry credentials"):
        await post(receiver_url.replace("http://", "http://user:secret@") + "/in")


async def test_no_answer_in_time_is_a_transient_failure(receiver_url: str) -> None:
    with pytest.raises(
        httpx.TimeoutException, match=r"did not answer within 0\.3 seconds"
    ) as failed:
        await post(f"{receiver_url}/slow", timeout_seconds=0.3)
    assert is_transient(failed.value)


async def test_an_unknown_host_is_a_transient_failure() -> None:
    with pytest.raises(httpx.ConnectError, match="could not be resolved") as failed:
        await post("http://no-such-host.invalid/in")
    assert is_transient(failed.value)
