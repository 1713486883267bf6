"""The sandbox's Chats API checks signatures as Kommo does; its Salesbot continues once.

Requests go over real HTTP to a running sandbox. The platform's own signer makes the valid
requests; the sandbox checks them with code of its own, and the signer itself is pinned to a
known vector in test_reply_delivery.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from agent_platform.crm.kommo.delivery.chats import signed_headers
from agent_platform.crm.sandbox.chats import CHANNEL_BOT_ID, CHANNEL_SCOPE_ID, CHANNEL_SECRET

PATH = f"/v2/origin/custom/{CHANNEL_SCOPE_ID}"


def new_message(msgid: str = "agent-platform-1", text: str = "300 USD") -> bytes:
    """A `new_message` from the channel's bot to a customer (Kommo, "Send, receive, or import
    messages": https://developers.kommo.com/reference/send-import-messages)."""
    return json.dumps(
        {
            "event_type": "new_message",
            "payload": {
                "timestamp": 1767323045,
                "msec_timestamp": 1767323045678,
                "msgid": msgid,
                "conversation_id": "chat-9",
                "conversation_ref_id": "chat-9",
                "sender": {"id": CHANNEL_BOT_ID, "ref_id": CHANNEL_BOT_ID, "name": "Agent"},
                "receiver": {"id": "customer-1", "ref_id": "customer-1", "name": "Ann"},
                "message": {"type": "text", "text": text},
                "silent": False,
            },
        }
    ).encode()


def signed(
    body: bytes, *, secret: str = CHANNEL_SECRET, path: str = PATH, now: datetime | None = None
) -> dict[str, str]:
    return signed_headers(secret, method="POST", path=path, body=body, now=now or datetime.now(UTC))


async def post(
    sandbox_url: str, body: bytes, headers: dict[str, str], path: str = PATH
) -> httpx.Response:
    async with httpx.AsyncClient(base_url=sandbox_url) as client:
        return await client.post(path, content=body, headers=headers)


async def received(sandbox_url: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=sandbox_url) as client:
        messages: list[dict[str, Any]] = (await client.get("/sandbox/chats/messages")).json()[
            "messages"
        ]
    return messages


async def test_a_signed_message_is_recorded_once_per_msgid(sandbox: tuple[str, str]) -> None:
    url, _ = sandbox
    body = new_message()
    first = await post(url, body, signed(body))
    again = await post(url, body, signed(body))
    assert (first.status_code, again.status_code) == (200, 200)
    assert first.json() == again.json()
    assert first.json()["new_message"]["ref_id"] == "agent-platform-1"
    [message] = await received(url)
    assert (message["msgid"], message["text"], message["conversation_ref_id"]) == (
        "agent-platform-1",
        "300 USD",
        "chat-9",
    )
    assert message["id"] == first.json()["new_message"]["msgid"]


@pytest.mark.parametrize("header", ["Date", "Content-MD5", "X-Signature"])
async def test_a_request_without_a_signature_header_is_401(
    sandbox: tuple[str, str], header: str
) -> None:
    body = new_message()
    headers = signed(body)
    del headers[header]
    assert (await post(sandbox[0], body, headers)).status_code == 401
    assert await received(sandbox[0]) == []


def _tampered_body(body: bytes) -> tuple[bytes, dict[str, str]]:
    return body.replace(b"300 USD", b"3 USD"), signed(body)


def _lying_checksum(body: bytes) -> tuple[bytes, dict[str, str]]:
    headers = signed(body.replace(b"300", b"301"))
    return body, {**headers, "Content-MD5": signed(body)["Content-MD5"]}


@pytest.mark.parametrize(
    "forge",
    [
        pytest.param(_tampered_body, id="body changed after signing"),
        pytest.param(_lying_checksum, id="checksum of the body, signature of another"),
        pytest.param(lambda b: (b, signed(b, secret="not-the-secret")), id="wrong secret"),
        pytest.param(lambda b: (b, signed(b, path="/v2/origin/custom/other")), id="other path"),
        pytest.param(
            lambda b: (b, signed(b, now=datetime.now(UTC) - timedelta(minutes=16))),
            id="older than 15 minutes",
        ),
        pytest.param(
            lambda b: (b, {**signed(b), "Content-Type": "text/plain"}), id="other content type"
        ),
    ],
)
async def test_a_forged_or_stale_request_is_403(sandbox: tuple[str, str], forge: Any) -> None:
    body, headers = forge(new_message())
    response = await post(sandbox[0], body, headers)
    assert response.status_code == 403, response.text
    assert await received(sandbox[0]) == []


async def test_an_unknown_scope_is_404_and_a_bad_message_400(sandbox: tuple[str, str]) -> None:
    url, _ = sandbox
    body = new_message()
    other = "/v2/origin/custom/unknown-scope"
    assert (await post(url, body, signed(body, path=other), path=other)).status_code == 404
    empty_text = new_message(text="")
    assert (await post(url, empty_text, signed(empty_text))).status_code == 400
    assert await received(url) == []


# --- Salesbot ---------------------------------------------------------------------------------


def continue_request(value: str = "Yes, we ship abroad.", handlers: int = 1) -> dict[str, Any]:
    """Shape: Kommo, "SalesBot widget block execution confirmation"."""
    return {
        "data": {"reply": value},
        "execute_handlers": [{"handler": "show", "params": {"type": "text", "value": value}}]
        * handlers,
    }


async def continue_bot(
    sandbox: tuple[str, str],
    body: dict[str, Any],
    *,
    continue_id: int = 654,
    token: str | None = None,
) -> httpx.Response:
    url, sandbox_token = sandbox
    async with httpx.AsyncClient(base_url=url) as client:
        return await client.post(
            f"/api/v4/salesbot/321/continue/{continue_id}",
            json=body,
            headers={"Authorization": f"Bearer {token or sandbox_token}"},
        )


async def continues(sandbox: tuple[str, str]) -> list[dict[str, Any]]:
    async with httpx.AsyncClient(base_url=sandbox[0]) as client:
        found: list[dict[str, Any]] = (await client.get("/sandbox/salesbot/continues")).json()[
            "continues"
        ]
    return found


async def test_a_bot_is_continued_once(sandbox: tuple[str, str]) -> None:
    first = await continue_bot(sandbox, continue_request())
    second = await continue_bot(sandbox, continue_request("Again?"))
    assert first.status_code == 200
    assert second.status_code == 400
    assert second.headers["content-type"] == "application/problem+json"
    [recorded] = await continues(sandbox)
    assert (recorded["bot_id"], recorded["continue_id"], recorded["data"]) == (
        321,
        654,
        {"reply": "Yes, we ship abroad."},
    )
    assert recorded["execute_handlers"] == continue_request()["execute_handlers"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(continue_request("x" * 81), id="a show longer than 80 characters"),
        pytest.param(continue_request(handlers=11), id="more than 10 handlers"),
        pytest.param(
            {"execute_handlers": [{"handler": "show", "params": {"type": "video", "value": "x"}}]},
            id="an unknown show type",
        ),
    ],
)
async def test_continues_beyond_kommos_limits_are_400(
    sandbox: tuple[str, str], body: dict[str, Any]
) -> None:
    response = await continue_bot(sandbox, body)
    assert response.status_code == 400
    assert response.json()["validation-errors"]
    assert await continues(sandbox) == []


async def test_a_continue_without_the_token_is_401(sandbox: tuple[str, str]) -> None:
    response = await continue_bot(sandbox, continue_request(), token="wrong")
    assert response.status_code == 401
    assert await continues(sandbox) == []
