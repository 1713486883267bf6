"""The one way every Kommo API call goes out: hook, request, metrics, error mapping, paging.

- `before_request` (the rate limiter's hook) is awaited before every HTTP request, pages and
  retried batch halves included, so nothing reaches Kommo around it; the callable it may
  return is awaited when that request is over.
- Every response is counted in `kommo_requests_total` and timed in
  `kommo_request_duration_seconds` under its templated endpoint, and logged as a
  `kommo_request` line carrying the bound request id, which is also sent as `X-Request-Id`:
  one id follows a webhook into its job and on to the Kommo calls that job makes.
- A non-2xx answer leaves as a typed `KommoError` (see errors.py); the access token never
  appears in an exception, a repr or a log line.
- Lists are read page by page following `_links.next` (`limit` at most 250); a 204 ends them.
- Writes go in batches of at most 50 items; a batch answered 504 is split in halves and each
  half sent again, down to single items, before the 504 is raised.
- A 429, and a 5xx to a request that is safe to repeat, is repeated in place after a wait
  (`Retry-After`, backoff, jitter), within the bounds of the `RetryPolicy` (see retries.py);
  each wait is timed in `kommo_retry_wait_seconds`.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx
import structlog

from agent_platform.crm.kommo.api.retries import DEFAULT_RETRY_POLICY, RetryBudget, RetryPolicy
from agent_platform.crm.kommo.errors import (
    KommoAuthError,
    KommoBlocked,
    KommoError,
    KommoGatewayTimeout,
    KommoNotFound,
    KommoPaymentRequired,
    KommoRateLimited,
    KommoUnavailable,
    KommoValidationError,
)
from agent_platform.crm.kommo.metrics import (
    endpoint_template,
    record_response,
    record_retry_wait,
)
from agent_platform.ops.logging import current_request_id

log = structlog.get_logger("kommo")

MAX_PAGE_SIZE = 250  # Kommo's cap on `limit`
MAX_BATCH_SIZE = 50  # Kommo's cap on the items of one write

# Awaited before each request; what it returns, when callable, is awaited once the request is
# over, answered or failed (the rate limiter counts a request until then).
AfterRequest = Callable[[], Awaitable[None]]
BeforeRequest = Callable[[], Awaitable[AfterRequest | None]]
QueryParams = Sequence[tuple[str, str | int]]
Row = TypeVar("Row")
# Takes the decoded body of a write's answer, returns its per-item rows.
RowsOf = Callable[[Any], list[Row]]


class KommoTransport:
    def __init__(
        self,
        base_url: str,
        access_token: str,
        http: httpx.AsyncClient,
        *,
        before_request: BeforeRequest | None = None,
        retry: RetryPolicy = DEFAULT_RETRY_POLICY,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {access_token}"}
        self._http = http
        self._before_request = before_request
        self._retry = retry

    def __repr__(self) -> str:
        return f"KommoTransport({self.base_url!r})"

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: QueryParams | None = None,
        json: object = None,
    ) -> httpx.Response:
        """Send one request, repeated while Kommo refuses it for now (see retries.py); a 2xx
        answer (204 included) is returned, anything else raised."""
        budget = RetryBudget(self._retry, method)
        while True:
            try:
                return await self._send(method, path, params=params, json=json)
            except KommoError as error:
                wait = budget.wait_before_repeat(error)
                if wait is None:
                    raise
            record_retry_wait(wait.reason, wait.seconds)
            await self._retry.sleep(wait.seconds)

    async def _send(
        self, method: str, path: str, *, params: QueryParams | None, json: object
    ) -> httpx.Response:
        """One HTTP request, in its own rate-limiter turn, counted, timed and logged."""
        endpoint = endpoint_template(path)
        request_id = current_request_id()
        headers = self._headers | {"X-Request-Id": request_id} if request_id else self._headers
        after = await self._before_request() if self._before_request is not None else None
        started = time.perf_counter()
        try:
            response = await self._http.request(
                method,
                self.base_url + path,
                params=tuple(params) if params is not None else None,
                json=json,
                headers=headers,
            )
        except httpx.TransportError as exc:
            _record(method, endpoint, None, started)
            # The type name says enough (timeout, refused…); the request, with its
            # Authorization header, stays out of the message.
            raise KommoUnavailable(None, f"{type(exc).__name__} calling {endpoint}") from exc
        finally:
            if after is not None:
                await after()
        _record(method, endpoint, response.status_code, started)
        if response.is_success:
            return response
        raise error_from(response)

    async def get_object(
        self, path: str, *, params: QueryParams | None = None, missing: str
    ) -> dict[str, Any]:
        """GET one record; Kommo's 204 for an unknown id becomes KommoNotFound(`missing`)."""
        response = await self.request("GET", path, params=params)
        if response.status_code == httpx.codes.NO_CONTENT:
            raise KommoNotFound(response.status_code, missing)
        with expecting_kommo_shape(response):
            body = response.json()
            if not isinstance(body, dict):
                raise TypeError("the body is not an object")
            return body

    async def get_collection(
        self, path: str, key: str, *, params: QueryParams | None = None
    ) -> list[dict[str, Any]]:
        """GET an unpaged collection (pipelines, webhooks…): `_embedded[key]`; 204 is none."""
        response = await self.request("GET", path, params=params)
        return embedded_rows(response, key)

    async def pages(
        self, path: str, key: str, *, params: QueryParams = (), page_size: int = MAX_PAGE_SIZE
    ) -> AsyncIterator[dict[str, Any]]:
        """Every record of a paged list, fetching page after page by `_links.next`."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        next_path: str | None = path
        next_params: QueryParams | None = [*params, ("limit", page_size)]
        while next_path is not None:
            response = await self.request("GET", next_path, params=next_params)
            for row in embedded_rows(response, key):
                yield row
            next_path, next_params = _next_page(response), None

    async def write_batched(
        self,
        method: str,
        path: str,
        items: Sequence[dict[str, Any]],
        rows_of: RowsOf[Row],
        *,
        batch_size: int = MAX_BATCH_SIZE,
    ) -> list[Row]:
        """Send `items` in batches of at most `batch_size`; return every answer row in order.

        Items without a `request_id` get their position in `items`, so answer rows and
        `validation-errors` name the caller's item whatever batch it travelled in. A 504 may
        mean Kommo wrote the batch anyway: callers that must not write twice check first
        (as the reply job does with the lead's notes).
        """
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be between 1 and {MAX_BATCH_SIZE}")
        numbered = [
            item if item.get("request_id") else {**item, "request_id": str(position)}
            for position, item in enumerate(items)
        ]
        rows: list[Row] = []
        for start in range(0, len(numbered), batch_size):
            rows += await self._write_halving(
                method, path, numbered[start : start + batch_size], rows_of
            )
        return rows

    async def _write_halving(
        self, method: str, path: str, batch: list[dict[str, Any]], rows_of: RowsOf[Row]
    ) -> list[Row]:
        try:
            response = await self.request(method, path, json=batch)
        except KommoGatewayTimeout:
            if len(batch) == 1:
                raise
            middle = len(batch) // 2
            first = await self._write_halving(method, path, batch[:middle], rows_of)
            return first + await self._write_halving(method, path, batch[middle:], rows_of)
        with expecting_kommo_shape(response):
            return rows_of(response.json())


def _record(method: str, endpoint: str, status: int | None, started: float) -> None:
    """Count and time the request; log it with the ids bound to this context (request_id,
    job_id…). The endpoint is a template and no header is logged: the token stays out."""
    seconds = time.perf_counter() - started
    record_response(endpoint, status, seconds)
    log.info(
        "kommo_request",
        method=method,
        endpoint=endpoint,
        status=status,
        duration_ms=round(seconds * 1000, 2),
    )


def rows_in(key: str) -> RowsOf[dict[str, Any]]:
    """The rows of a batch write's answer found at `_embedded[key]`."""

    def rows(body: Any) -> list[dict[str, Any]]:
        found = body["_embedded"][key]
        if not isinstance(found, list):
            raise TypeError(f"_embedded.{key} is not a list")
        return found

    return rows


def bare_list(body: Any) -> list[dict[str, Any]]:
    """The rows of a write answered with a bare JSON array (`leads/complex`)."""
    if not isinstance(body, list):
        raise TypeError("the body is not a list")
    return body


def embedded_rows(response: httpx.Response, key: str) -> list[dict[str, Any]]:
    """`_embedded[key]` of a HAL answer; Kommo's 204 ("nothing matched") is an empty list."""
    if response.status_code == httpx.codes.NO_CONTENT:
        return []
    with expecting_kommo_shape(response):
        rows = response.json()["_embedded"][key]
        if not isinstance(rows, list):
            raise TypeError(f"_embedded.{key} is not a list")
        return rows


def _next_page(response: httpx.Response) -> str | None:
    """The path and query of `_links.next`, to be requested on our own base URL.

    Only the path is taken from the link: the token is never sent to a host named in a
    response body, and a sandbox behind a proxy links correctly either way.
    """
    if response.status_code == httpx.codes.NO_CONTENT:
        return None
    with expecting_kommo_shape(response):
        href = (response.json().get("_links") or {}).get("next", {}).get("href")
    if not href:
        return None
    parts = urlsplit(str(href))
    return parts.path + (f"?{parts.query}" if parts.query else "")


@contextmanager
def expecting_kommo_shape(response: httpx.Response) -> Iterator[None]:
    """Turn a success body that is not what Kommo documents into a KommoError, not a KeyError."""
    try:
        yield
    except (ValueError, LookupError, TypeError, AttributeError) as exc:
        raise KommoError(response.status_code, "unexpected response body from Kommo") from exc


def error_from(response: httpx.Response) -> KommoError:
    status = response.status_code
    problem = _problem_body(response)
    detail = str(problem.get("detail") or problem.get("title") or response.reason_phrase)
    match status:
        case 400 | 422:
            errors = problem.get("validation-errors")
            return KommoValidationError(
                status, detail, validation_errors=errors if isinstance(errors, list) else []
            )
        case 401:
            return KommoAuthError(status, detail)
        case 402:
            return KommoPaymentRequired(status, detail)
        case 403:
            return KommoBlocked(status, detail)
        case 404:
            return KommoNotFound(status, detail)
        case 429:
            return KommoRateLimited(status, detail, retry_after=_retry_after(response, problem))
        case 504:
            return KommoGatewayTimeout(status, detail)
        case _ if status >= 500:
            return KommoUnavailable(status, detail)
        case _:
            return KommoError(status, detail)


def _problem_body(response: httpx.Response) -> dict[str, Any]:
    """Kommo's RFC 7807 body (`title`, `detail`, …); a proxy's HTML error page yields {}."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _retry_after(response: httpx.Response, problem: dict[str, Any]) -> float | None:
    """Seconds Kommo asked us to stay away: the `Retry-After` header, else `retry_after` in
    the body. Only numbers of seconds are read; an HTTP-date or garbage counts as "not said",
    and the caller falls back to its own backoff."""
    stated: tuple[Any, ...] = (response.headers.get("Retry-After"), problem.get("retry_after"))
    for said in stated:
        with suppress(TypeError, ValueError):
            return max(0.0, float(said))
    return None


def bracketed(prefix: str, value: Any) -> list[tuple[str, str | int]]:
    """PHP-style query parameters, as Kommo reads them.

    `bracketed("filter", {"id": [1, 2], "statuses": [{"pipeline_id": 5, "status_id": 6}],
    "created_at": {"from": 10}})` gives `filter[id][]=1`, `filter[id][]=2`,
    `filter[statuses][0][pipeline_id]=5`, `filter[statuses][0][status_id]=6`,
    `filter[created_at][from]=10`. Booleans are sent as 1 and 0.
    """
    if isinstance(value, Mapping):
        return [pair for key, item in value.items() for pair in bracketed(f"{prefix}[{key}]", item)]
    if isinstance(value, list | tuple):
        if all(isinstance(item, Mapping) for item in value):
            return [
                pair
                for index, item in enumerate(value)
                for pair in bracketed(f"{prefix}[{index}]", item)
            ]
        return [pair for item in value for pair in bracketed(f"{prefix}[]", item)]
    if isinstance(value, bool):
        return [(prefix, int(value))]
    if isinstance(value, int | str):
        return [(prefix, value)]
    raise TypeError(f"cannot send {type(value).__name__} as a query parameter")


def list_params(
    *,
    filter: Mapping[str, Any] | None = None,
    query: str | None = None,
    order: tuple[str, str] | None = None,
    with_: Sequence[str] = (),
) -> list[tuple[str, str | int]]:
    """The common query of Kommo's list calls: `filter[…]`, `query`, `order[field]`, `with`."""
    params: list[tuple[str, str | int]] = bracketed("filter", dict(filter)) if filter else []
    if query:
        params.append(("query", query))
    if order:
        field, direction = order
        params.append((f"order[{field}]", direction))
    if with_:
        params.append(("with", ",".join(with_)))
    return params
