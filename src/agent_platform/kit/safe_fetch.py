"""Fetch a URL a user gave us without letting it reach inside our own network (SSRF).

Only http and https. Every hop (the URL and each redirect) is resolved here and refused when
any of its addresses is loopback, private, link-local, multicast or otherwise not public,
unless private networks are allowed. The request then goes to the address that was checked,
not to a second DNS answer, so a name cannot resolve to a public address for the check and
to an internal one for the connection (DNS rebinding). The body is read up to a size limit,
and the whole exchange, redirects included, has one deadline.

The same checks serve other requests to users' URLs (automation's outbound webhooks):
`check_url` refuses what can be seen without DNS (when a URL is saved), `checked_target`
resolves and checks every address and pins the request to the one checked.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urljoin

import httpx

from agent_platform.kit.errors import AppError

ALLOWED_SCHEMES = frozenset({"http", "https"})
USER_AGENT = "GPT-Agent-Platform/1 (+knowledge base fetcher)"
FETCH_REFUSAL = "only public addresses can be fetched"
# The name (and its subdomains) that always means this machine (RFC 6761), whatever a
# resolver would answer.
LOOPBACK_NAME = "localhost"
# The forms of an IPv4 address that resolvers accept besides dotted quads ("2130706433",
# "0x7f.1", "127.1"): digits, hex digits with 0x, dots.
_LEGACY_IPV4 = re.compile(r"(?:0[xX][0-9a-fA-F]*|[0-9]+)(?:\.(?:0[xX][0-9a-fA-F]*|[0-9]+)){0,3}")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class UnsafeUrlError(AppError):
    status_code = 422
    code = "unsafe_url"


class FetchFailedError(AppError):
    status_code = 422
    code = "fetch_failed"


class HostNotResolvedError(FetchFailedError):
    """The name has no address now: possibly a passing DNS failure, unlike a refusal."""


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
class CheckedTarget:
    """A checked URL: the URL to request, rewritten to the vetted address, and the name the
    server expects in Host and in TLS (SNI and certificate checks)."""

    pinned_url: httpx.URL
    host_header: str
    tls_hostname: str | None

    def build_request(
        self,
        client: httpx.AsyncClient,
        method: str,
        *,
        headers: dict[str, str],
        content: bytes | None = None,
    ) -> httpx.Request:
        """A request to the checked address that the server sees as one to the URL's host."""
        return client.build_request(
            method,
            self.pinned_url,
            headers={**headers, "Host": self.host_header},
            content=content,
            extensions={"sni_hostname": self.tls_hostname} if self.tls_hostname else {},
        )


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
            target = await checked_target(
                current, allow_private_networks=limits.allow_private_networks
            )
            request = target.build_request(client, "GET", headers={"User-Agent": USER_AGENT})
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


def check_url(url: str, *, allow_private_networks: bool, refusal: str = FETCH_REFUSAL) -> httpx.URL:
    """The checks that need no DNS: an http(s) URL with a host that, unless private networks
    are allowed, is neither a literal non-public address nor a name for this machine.

    `refusal` ends the message of a refused address: why only public ones are allowed.
    """
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise UnsafeUrlError(f"{url!r} is not a valid URL.") from exc
    if parsed.scheme not in ALLOWED_SCHEMES:
        raise UnsafeUrlError(f"Only http and https URLs are allowed, not {parsed.scheme!r}.")
    host = _host(parsed)
    if not host:
        raise UnsafeUrlError(f"{url!r} names no host.")
    if not allow_private_networks:
        literal = _as_address(host)
        if literal is not None and not is_public_address(literal):
            named = host if host == str(literal) else f"{host} ({literal})"
            raise UnsafeUrlError(
                f"refused: {named} is a {describe_address(literal)} address; {refusal}."
            )
        name = host.rstrip(".").lower()
        if name == LOOPBACK_NAME or name.endswith(f".{LOOPBACK_NAME}"):
            raise UnsafeUrlError(f"refused: {host} is a loopback address; {refusal}.")
    return parsed


async def checked_target(
    url: str, *, allow_private_networks: bool, refusal: str = FETCH_REFUSAL
) -> CheckedTarget:
    """`check_url`, then resolve the host and refuse it when any of its addresses is not
    public (unless private networks are allowed); the target is pinned to the first address.

    Raises UnsafeUrlError for a refused URL, HostNotResolvedError when the name has no address.
    """
    parsed = check_url(url, allow_private_networks=allow_private_networks, refusal=refusal)
    host = _host(parsed)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    addresses = await _resolve(host, port)
    if not allow_private_networks:
        for address in addresses:
            if not is_public_address(address):
                raise UnsafeUrlError(
                    f"refused: {host} resolves to {address}, "
                    f"a {describe_address(address)} address; {refusal}."
                )
    is_literal = _as_address(host) is not None
    return CheckedTarget(
        pinned_url=parsed.copy_with(host=str(addresses[0])),
        host_header=parsed.netloc.decode("ascii"),
        tls_hostname=None if is_literal else host,
    )


def _host(parsed: httpx.URL) -> str:
    return parsed.raw_host.decode("ascii")  # IDNA-encoded; IPv6 without brackets


async def _resolve(host: str, port: int) -> list[IPAddress]:
    literal = _as_address(host)
    if literal is not None:
        return [literal]
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise HostNotResolvedError(f"The host {host} could not be resolved.") from exc
    # sockaddr[0] is the address text; an IPv6 one may carry a "%zone" suffix.
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _as_address(host: str) -> IPAddress | None:
    """The address a host names literally, in any form a resolver would read as one."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _LEGACY_IPV4.fullmatch(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
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
