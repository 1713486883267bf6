"""kit.safe_fetch: a user's URL cannot reach inside our network, at the first hop or any
redirect; allowed fetches go to the checked address, within size and time limits.

Refusals happen before any connection. The public first hop of a redirect is answered by
respx (no test may reach the internet); everything else talks to local servers over HTTP.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from agent_platform.kit.safe_fetch import (
    FetchFailedError,
    FetchLimits,
    FetchTooLargeError,
    UnsafeUrlError,
    fetch,
)
from tests.conftest import free_port
from tests.support.servers import serve_app

LIMITS = FetchLimits(max_bytes=10_000, timeout_seconds=5)
PRIVATE_ALLOWED = dataclasses.replace(LIMITS, allow_private_networks=True)
PUBLIC_ADDRESS = "93.184.216.34"  # answered by respx, never reached


async def echo_host(request: Request) -> Response:
    return PlainTextResponse(f"host={request.headers['host']}")


async def large(request: Request) -> Response:
    return PlainTextResponse("x" * 20_000)


async def large_without_length(request: Request) -> Response:
    async def pieces() -> AsyncIterator[bytes]:
        for _ in range(20):
            yield b"x" * 1_000

    return StreamingResponse(pieces(), media_type="text/plain")


async def slow(request: Request) -> Response:
    await asyncio.sleep(30)
    return PlainTextResponse("late")


async def missing(request: Request) -> Response:
    return PlainTextResponse("no such page", status_code=404)


async def moved(request: Request) -> Response:
    return RedirectResponse("/page", status_code=301)


async def page(request: Request) -> Response:
    return Response("<p>Привет</p>", media_type="text/html; charset=utf-8")


@pytest.fixture(scope="module")
def local_site() -> Iterator[str]:
    app = Starlette(
        routes=[
            Route("/host", echo_host),
            Route("/large", large),
            Route("/large-streamed", large_without_length),
            Route("/slow", slow),
            Route("/missing", missing),
            Route("/moved", moved),
            Route("/page", page),
        ]
    )
    with serve_app(app) as url:
        yield url


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://127.0.0.1/", "loopback"),
        ("http://localhost:8080/admin", "loopback"),
        ("http://[::1]/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        ("http://10.0.0.5/", "private"),
        ("http://172.16.3.4/", "private"),
        ("https://192.168.1.1/", "private"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/", "link-local"),
        ("http://224.0.0.1/", "multicast"),
        ("http://240.0.0.1/", "reserved"),
        ("http://0.0.0.0/", "unspecified"),
        ("http://100.64.0.1/", "non-public"),
    ],
)
async def test_addresses_inside_our_network_are_refused(url: str, kind: str) -> None:
    with pytest.raises(UnsafeUrlError, match=f"a {kind} address"):
        await fetch(url, LIMITS)


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.com/file.txt",
        "gopher://127.0.0.1:70/",
        "javascript:alert(1)",
        "http://",
        "http://[::1",
    ],
)
async def test_only_http_and_https_urls_with_a_host_are_fetched(url: str) -> None:
    with pytest.raises(UnsafeUrlError):
        await fetch(url, PRIVATE_ALLOWED)


@pytest.mark.parametrize(
    "location",
    ["http://127.0.0.1:8080/admin", "http://localhost/", "http://169.254.169.254/", "file:///x"],
)
async def test_a_redirect_into_our_network_is_refused(location: str) -> None:
    with respx.mock:
        start = respx.get(f"http://{PUBLIC_ADDRESS}/start").respond(
            302, headers={"Location": location}
        )
        with pytest.raises(UnsafeUrlError):
            await fetch(f"http://{PUBLIC_ADDRESS}/start", LIMITS)
    assert start.call_count == 1


async def test_public_redirects_are_followed_to_the_page() -> None:
    with respx.mock:
        respx.get(f"http://{PUBLIC_ADDRESS}/old").respond(301, headers={"Location": "/new"})
        respx.get(f"http://{PUBLIC_ADDRESS}/new").respond(
            200, text="<h1>Prices</h1>", headers={"Content-Type": "text/html; charset=utf-8"}
        )
        fetched = await fetch(f"http://{PUBLIC_ADDRESS}/old", LIMITS)
    assert fetched.url == f"http://{PUBLIC_ADDRESS}/new"
    assert (fetched.media_type, fetched.charset) == ("text/html", "utf-8")
    assert fetched.body == b"<h1>Prices</h1>"


async def test_endless_redirects_stop() -> None:
    with respx.mock:
        respx.get(f"http://{PUBLIC_ADDRESS}/loop").respond(302, headers={"Location": "/loop"})
        with pytest.raises(FetchFailedError, match="redirects more than 5 times"):
            await fetch(f"http://{PUBLIC_ADDRESS}/loop", LIMITS)


async def test_with_private_networks_allowed_a_local_page_is_fetched(local_site: str) -> None:
    fetched = await fetch(f"{local_site}/moved", PRIVATE_ALLOWED)
    assert fetched.url == f"{local_site}/page"
    assert fetched.media_type == "text/html"
    assert fetched.body.decode(fetched.charset or "") == "<p>Привет</p>"


async def test_a_local_page_is_refused_while_private_networks_are_not_allowed(
    local_site: str,
) -> None:
    with pytest.raises(UnsafeUrlError, match="loopback"):
        await fetch(f"{local_site}/page", LIMITS)


async def test_the_connection_goes_to_the_checked_address_with_the_names_host(
    local_site: str,
) -> None:
    port = httpx.URL(local_site).port
    fetched = await fetch(f"http://localhost:{port}/host", PRIVATE_ALLOWED)
    assert fetched.body == f"host=localhost:{port}".encode()


@pytest.mark.parametrize("path", ["/large", "/large-streamed"])
async def test_content_over_the_size_limit_is_refused(local_site: str, path: str) -> None:
    with pytest.raises(FetchTooLargeError):
        await fetch(f"{local_site}{path}", PRIVATE_ALLOWED)


async def test_a_page_that_does_not_answer_in_time_fails(local_site: str) -> None:
    limits = dataclasses.replace(PRIVATE_ALLOWED, timeout_seconds=0.3)
    with pytest.raises(FetchFailedError, match=r"did not answer within 0\.3 seconds"):
        await fetch(f"{local_site}/slow", limits)


async def test_an_error_status_fails(local_site: str) -> None:
    with pytest.raises(FetchFailedError, match="answered HTTP 404"):
        await fetch(f"{local_site}/missing", PRIVATE_ALLOWED)


async def test_unreachable_and_unknown_hosts_fail() -> None:
    with pytest.raises(FetchFailedError, match="could not be fetched"):
        await fetch(f"http://127.0.0.1:{free_port()}/", PRIVATE_ALLOWED)
    with pytest.raises(FetchFailedError, match="could not be resolved"):
        await fetch("http://no-such-host.invalid/", PRIVATE_ALLOWED)
