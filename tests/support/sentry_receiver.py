"""A stand-in for Sentry's ingest endpoint, over real HTTP: what the SDK really sends, parsed.

The SDK posts envelopes (https://develop.sentry.dev/sdk/envelopes/) to
/api/<project>/envelope/, compressed: one JSON header line, then items, each a JSON header
line and a payload (of `length` bytes when given, else up to the next newline).

The receiver is a bare ASGI callable, not a Starlette app: the SDK instruments Starlette apps
in its process, and each envelope received would be a transaction sent to it in turn.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sentry_sdk
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from tests.support.servers import serve_app


@dataclass(frozen=True)
class EnvelopeItem:
    type: str
    payload: dict[str, Any]


@dataclass
class SentryReceiver:
    envelopes: list[bytes] = field(default_factory=list)

    @contextmanager
    def serving(self) -> Iterator[str]:
        """Serve the receiver; yields a DSN pointing at it (project 1)."""
        with serve_app(self) as url:
            yield url.replace("http://", "http://publickey@") + "/1"

    def items(self, item_type: str) -> list[EnvelopeItem]:
        return [
            item
            for envelope in self.envelopes
            for item in parse_envelope(envelope)
            if item.type == item_type
        ]

    def everything_sent(self) -> bytes:
        """Every envelope, decompressed: where a leaked secret would show."""
        return b"\n".join(self.envelopes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI app: records each envelope."""
        if scope["type"] == "lifespan":  # nothing to start or stop
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        body = b""
        more_body = True
        while more_body:
            message = await receive()
            body += message.get("body", b"")
            more_body = message.get("more_body", False)
        if scope["method"] == "POST" and scope["path"].endswith("/envelope/"):
            self.envelopes.append(_decompressed(body, Headers(scope=scope)))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})


def parse_envelope(envelope: bytes) -> list[EnvelopeItem]:
    _header, _, rest = envelope.partition(b"\n")
    items = []
    while rest.strip():
        item_header_line, _, rest = rest.partition(b"\n")
        item_header = json.loads(item_header_line)
        length = item_header.get("length")
        if length is None:
            payload, _, rest = rest.partition(b"\n")
        else:
            payload, rest = rest[:length], rest[length + 1 :]
        items.append(EnvelopeItem(item_header["type"], json.loads(payload) if payload else {}))
    return items


def _decompressed(body: bytes, headers: Headers) -> bytes:
    encoding = headers.get("content-encoding", "")
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "deflate":
        return zlib.decompress(body)
    if encoding == "br":
        import brotli  # type: ignore[import-not-found]  # only when the SDK found it installed

        return bytes(brotli.decompress(body))
    return body


def stop_sentry() -> None:
    """Back to no client at all, so that the tests that follow report nothing."""
    sentry_sdk.get_client().close(timeout=2)
    sentry_sdk.get_global_scope().set_client(None)
    sentry_sdk.get_global_scope().clear()
