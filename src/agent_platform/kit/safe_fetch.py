"""Fetch a URL a user gave us without letting it reach inside our own network (SSRF).

Only http and https. Every hop (the URL and each redirect) is resolved here and refused when
any of its addresses is loopback, private, link-local, multicast or otherwise not public,
unless private networks are allowed. The request then goes to the address that was checked,
not to a second DNS answer, so a name cannot resolve to a public address for the check and
to an internal one for the connection (DNS rebinding). The body is read up to a size limit,
and the whole exchange, redirects included, has one deadline.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from agent_platform.kit.errors import AppError

ALLOWED_SCHEMES = frozenset({"http", "https"})
USER_AGENT = "GPT-Agent-Platform/1 (+knowledge base fetcher)"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrlError(AppError):
    status_code = 422
    code = "unsafe_url"


class FetchFailedError(AppError):
    status_code = 422
    code = "fetch_failed"


class FetchTooLargeError(AppError):
    status_code = 422
    code = "fetched_content_too_large"


@dataclass(frozen=True)
class FetchLimits:
    max_bytes: int
    timeout_seconds: float
    allow_private_networks: bool = False
    max_redirects: int = 5


@dataclass(frozen=True)
class FetchedResource:
    url: str  # where the body came from, after redirects
    media_type: str  # lowercased, without parameters: "text/html"
    charset: str | None
    body: bytes


@dataclass(frozen=True)
class _Target:
    """A checked hop: the URL to request, rewritten to the vetted address, and the name the
    server expects in Host and in TLS (SNI and certificate checks)."""

    pinned_url: httpx.URL
    host_header: str
    tls_hostname: str | None


async def fetch(url: str, limits: FetchLimits) -> FetchedResource:
    """GET `url`, following redirects; every refusal and failure is an AppError (a 4xx)."""
    try:
        async with asyncio.timeout(limits.timeout_seconds):
            return await _follow(url, limits)
    except TimeoutError as exc:
        raise FetchFailedError(
            f"{url} did not answer within {limits.timeout_seconds:g} seconds."
        ) from exc
    except httpx.HTTPError as exc:
        raise FetchFailedError(f"{url} could not be fetched ({type(exc).__name__}).") from exc


async def _follow(url: str, limits: FetchLimits) -> FetchedResource:
    # No pooled connections: one kept for a checked name must never carry a request for
    # another name at the same address. No proxies from the environment: the address we
    # checked is the one we connect to.
    async with httpx.AsyncClient(
        trust_env=False,
        timeout=limits.timeout_seconds,
        limits=httpx.Limits(max_keepalive_connections=0),
    ) as client:
        current = url
        for _ in range(limits.max_redirects + 1):
            target = await _checked_target(current, limits.allow_private_networks)
            request = client.build_request(
                "GET",
                target.pinned_url,
                headers={"Host": target.host_header, "User-Agent": USER_AGENT},
                extensions={"sni_hostname": target.tls_hostname} if target.tls_hostname else {},
            )
            response = await client.send(request, stream=True)
            try:
                if response.is_redirect:
                    current = urljoin(current, response.headers["location"])
                    continue
                if not response.is_success:
                    raise FetchFailedError(f"{current} answered HTTP {response.status_code}.")
                body = await _read_limited(response, limits.max_bytes)
            finally:
                await response.aclose()
            media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            return FetchedResource(current, media_type, response.charset_encoding, body)
    raise FetchFailedError(f"{url} redirects more than {limits.max_redirects} times.")


async def _checked_target(url: str, allow_private_networks: bool) -> _Target:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UnsafeUrlError(f"{url!r} is not a valid URL.") from exc
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise UnsafeUrlError(f"Only http and https URLs can be fetched, not {parsed.scheme!r}.")
    host = parsed.raw_host.decode("ascii")  # IDNA-encoded; IPv6 without brackets
    if not host:
        raise UnsafeUrlError(f"{url!r} names no host.")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = await _resolve(host, port)
    if not allow_private_networks:
        for address in addresses:
            if not is_public_address(address):
                raise UnsafeUrlError(
                    f"{host} resolves to {address}, a {describe_address(address)} address; "
                    "fetching it is not allowed."
                )
    is_literal = _as_address(host) is not None
    return _Target(
        pinned_url=parsed.copy_with(host=str(addresses[0])),
        host_header=parsed.netloc.decode("ascii"),
        tls_hostname=None if is_literal else host,
    )


async def _resolve(host: str, port: int) -> list[IPAddress]:
    literal = _as_address(host)
    if literal is not None:
        return [literal]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchFailedError(f"The host {host} could not be resolved.") from exc
    # sockaddr[0] is the address text; an IPv6 one may carry a "%zone" suffix.
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _as_address(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def is_public_address(address: IPAddress) -> bool:
    """True for an address on the public internet."""
    address = _unwrapped(address)
    # is_global alone lets multicast and some reserved ranges through.
    return address.is_global and not address.is_multicast and not address.is_reserved


def describe_address(address: IPAddress) -> str:
    """What kind of non-public address it is, for the refusal's message."""
    address = _unwrapped(address)
    for kind, applies in (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("reserved", address.is_reserved),
        ("private", address.is_private),
    ):
        if applies:
            return kind
    return "non-public"


def _unwrapped(address: IPAddress) -> IPAddress:
    """The IPv4 address inside an IPv4-mapped or 6to4 IPv6 one, which is where it leads."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return embedded
    return address


async def _read_limited(response: httpx.Response, max_bytes: int) -> bytes:
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > max_bytes:
        raise FetchTooLargeError(f"The content is larger than {max_bytes} bytes.")
    body = bytearray()
    async for piece in response.aiter_bytes():
        body += piece
        if len(body) > max_bytes:
            raise FetchTooLargeError(f"The content is larger than {max_bytes} bytes.")
    return bytes(body)
