"""KommoClient's transport: paging, batching, 504 halving, riding out 429s and 5xx, error
mapping, hook, metrics.

Against the sandbox over real HTTP where the sandbox can answer (counting the requests it
received in its request logs, its fault switches making it refuse); a mock transport for
answers it never gives (402, 404, odd bodies…). Waits go through a recording `sleep`, so the
tests see every wait the transport decided on without spending it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from prometheus_client import REGISTRY

from agent_platform.crm.kommo.api.account import AccountApi
from agent_platform.crm.kommo.api.activity import NotesApi
from agent_platform.crm.kommo.api.entities import LeadsApi
from agent_platform.crm.kommo.api.retries import RetryPolicy
from agent_platform.crm.kommo.api.transport import BeforeRequest, KommoTransport, bracketed
from agent_platform.crm.kommo.client import KommoClient
from agent_platform.crm.kommo.errors import (
    KommoAccountStopped,
    KommoAuthError,
    KommoBlocked,
    KommoError,
    KommoGatewayTimeout,
    KommoNotFound,
    KommoPaymentRequired,
    KommoRateLimited,
    KommoUnavailable,
    KommoValidationError,
    ValidationIssue,
)
from agent_platform.crm.kommo.metrics import endpoint_template
from agent_platform.crm.kommo.models import (
    ContactFilter,
    CustomFieldInput,
    LeadFilter,
    LeadInput,
    LeadUpdate,
    NoteInput,
    TagRef,
    TaskInput,
    TaskUpdate,
    TimeRange,
)
from agent_platform.crm.sandbox.store import DEMO_CONTACT_ID, DEMO_LEAD_ID
from tests.contract.sandbox import TOKEN, RunningSandbox, running_sandbox


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox() as running:
        yield running


@pytest.fixture
async def http(sandbox: RunningSandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as http:
        await sandbox.fresh(http)
        yield http


@pytest.fixture
def kommo(sandbox: RunningSandbox, http: httpx.AsyncClient) -> KommoClient:
    return KommoClient(sandbox.url, TOKEN, http)


# --- the reply path's calls ------------------------------------------------------------------


async def test_added_note_is_listed_and_stored(
    kommo: KommoClient, http: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    note_id = await kommo.add_note("leads", DEMO_LEAD_ID, "Lead asked for a callback")

    notes = await kommo.list_notes("leads", DEMO_LEAD_ID)

    assert [(n.id, n.entity_id, n.note_type, n.text) for n in notes] == [
        (note_id, DEMO_LEAD_ID, "common", "Lead asked for a callback")
    ]
    assert notes[0].created_at > 0
    stored = (await http.get(f"{sandbox.url}/sandbox/notes")).json()["notes"]
    assert [(n["id"], n["entity_type"], n["params"]["text"]) for n in stored] == [
        (note_id, "leads", "Lead asked for a callback")
    ]


async def test_notes_are_listed_newest_first_up_to_the_limit(kommo: KommoClient) -> None:
    ids = [await kommo.add_note("contacts", DEMO_CONTACT_ID, f"note {n}") for n in range(3)]

    notes = await kommo.list_notes("contacts", DEMO_CONTACT_ID, limit=2)

    assert [note.id for note in notes] == [ids[2], ids[1]]
    assert [note.text for note in notes] == ["note 2", "note 1"]


async def test_no_notes_is_kommos_204_and_an_empty_list(
    kommo: KommoClient, http: httpx.AsyncClient, sandbox: RunningSandbox
) -> None:
    raw = await http.get(
        f"{sandbox.url}/api/v4/leads/{DEMO_LEAD_ID}/notes", headers=sandbox.headers
    )
    assert raw.status_code == 204

    assert await kommo.list_notes("leads", DEMO_LEAD_ID) == []


async def test_get_lead_returns_the_demo_lead_with_its_contact(kommo: KommoClient) -> None:
    lead = await kommo.get_lead(DEMO_LEAD_ID)

    assert (lead.id, lead.name) == (DEMO_LEAD_ID, "Demo lead")
    assert [(c.id, c.is_main) for c in lead.contacts] == [(DEMO_CONTACT_ID, True)]


async def test_unknown_lead_is_not_found(kommo: KommoClient) -> None:
    with pytest.raises(KommoNotFound):
        await kommo.get_lead(999_999)


# --- paging, batching, halving ---------------------------------------------------------------


async def test_a_list_of_more_than_250_is_read_page_by_page(
    kommo: KommoClient, sandbox: RunningSandbox
) -> None:
    for n in range(600):
        sandbox.store.add_lead(name=f"bulk {n}")

    leads = [lead async for lead in kommo.leads.iterate()]

    assert len(leads) == 601
    assert len({lead.id for lead in leads}) == 601
    # 250 + 250 + 101: Kommo's largest page, the next ones found by `_links.next`.
    assert sandbox.api_requests("GET") == ["/api/v4/leads"] * 3


async def test_a_page_size_above_kommos_limit_is_refused_before_sending(
    kommo: KommoClient, sandbox: RunningSandbox
) -> None:
    with pytest.raises(ValueError, match="page_size"):
        [lead async for lead in kommo.leads.iterate(page_size=251)]

    assert sandbox.store.requests == []


async def test_120_notes_go_in_3_requests_of_at_most_50(
    kommo: KommoClient, sandbox: RunningSandbox
) -> None:
    notes = [NoteInput.common(DEMO_LEAD_ID, f"note {n}") for n in range(120)]

    added = await kommo.notes.add("leads", notes)

    assert sandbox.api_requests("POST") == ["/api/v4/leads/notes"] * 3
    assert [a.request_id for a in added] == [str(n) for n in range(120)]
    stored = sandbox.store.notes("leads", DEMO_LEAD_ID)
    assert [n.params["text"] for n in stored] == [f"note {n}" for n in range(120)]
    assert [a.id for a in added] == [n.id for n in stored]


async def test_a_504_batch_is_sent_again_in_halves(
    kommo: KommoClient, sandbox: RunningSandbox
) -> None:
    sandbox.store.gateway_timeout_above = 10

    added = await kommo.leads.add([LeadInput(name=f"lead {n}") for n in range(50)])

    # 50 → 25+25 → 12+13 each → 6+6 and 6+7 each: 1 + 2 + 4 timeouts, then 8 batches written.
    statuses = [r.status for r in sandbox.store.requests]
    assert statuses.count(504) == 7
    assert statuses.count(200) == 8
    assert [a.request_id for a in added] == [str(n) for n in range(50)]
    names = [lead.name for lead in sandbox.store.leads() if lead.id != DEMO_LEAD_ID]
    assert names == [f"lead {n}" for n in range(50)]


async def test_a_504_for_a_single_item_gives_up(
    kommo: KommoClient, sandbox: RunningSandbox
) -> None:
    sandbox.store.gateway_timeout_above = 0

    with pytest.raises(KommoGatewayTimeout) as raised:
        await kommo.notes.add("leads", [NoteInput.common(DEMO_LEAD_ID, f"n{n}") for n in range(3)])

    assert raised.value.retryable
    # [3] → [1] fails: no use sending the other halves of a batch Kommo cannot take.
    assert [r.status for r in sandbox.store.requests] == [504, 504]
    assert sandbox.store.notes() == []


async def test_validation_errors_name_the_callers_item_across_batches(kommo: KommoClient) -> None:
    notes = [NoteInput.common(DEMO_LEAD_ID, "fine") for _ in range(60)]
    notes[55] = NoteInput.common(999_999, "orphan")

    with pytest.raises(KommoValidationError) as raised:
        await kommo.notes.add("leads", notes)

    assert raised.value.issues == [
        ValidationIssue("55", "entity_id", "NotFound", "No leads with this id")
    ]


async def test_before_request_runs_before_every_request(
    sandbox: RunningSandbox, http: httpx.AsyncClient
) -> None:
    calls = 0

    async def take_turn() -> None:
        nonlocal calls
        calls += 1

    kommo = KommoClient(sandbox.url, TOKEN, http, before_request=take_turn)
    for n in range(300):
        sandbox.store.add_lead(name=f"bulk {n}")
    [lead async for lead in kommo.leads.iterate()]
    await kommo.notes.add("leads", [NoteInput.common(DEMO_LEAD_ID, "x")] * 60)

    assert calls == len(sandbox.store.requests) == 2 + 2


async def test_a_next_link_to_another_host_is_followed_on_our_own_host() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url))
        if request.url.params.get("page") == "2":
            return httpx.Response(204)
        page = {
            "_links": {"next": {"href": "https://evil.example/api/v4/leads?page=2&limit=250"}},
            "_embedded": {"leads": []},
        }
        return httpx.Response(200, json=page)

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer)) as http:
        kommo = KommoClient("https://acme.kommo.com", TOKEN, http)
        assert [lead async for lead in kommo.leads.iterate()] == []

    assert seen == [
        "https://acme.kommo.com/api/v4/leads?limit=250",
        "https://acme.kommo.com/api/v4/leads?page=2&limit=250",
    ]


# --- riding out 429s and 5xx -----------------------------------------------------------------


class RecordedWaits:
    """The transport's `sleep`: keeps each wait it is asked for and returns at once."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)


@pytest.fixture
def waits() -> RecordedWaits:
    return RecordedWaits()


def _patient_transport(
    sandbox: RunningSandbox,
    http: httpx.AsyncClient,
    waits: RecordedWaits,
    *,
    jitter_share: float = 0.0,
    before_request: BeforeRequest | None = None,
    **policy: int,
) -> KommoTransport:
    """The transport with the default limits, waiting through `waits`, with a fixed jitter."""
    retry = RetryPolicy(sleep=waits, random_share=lambda: jitter_share, **policy)
    return KommoTransport(sandbox.url, TOKEN, http, before_request=before_request, retry=retry)


async def test_a_short_429_storm_is_ridden_out_without_losing_the_write(
    sandbox: RunningSandbox, http: httpx.AsyncClient, waits: RecordedWaits
) -> None:
    turns = 0

    async def take_turn() -> None:
        nonlocal turns
        turns += 1

    transport = _patient_transport(sandbox, http, waits, before_request=take_turn)
    await sandbox.switch_faults(http, storm_429=3, retry_after=1)

    added = await NotesApi(transport).add("leads", [NoteInput.common(DEMO_LEAD_ID, "still here")])

    assert await sandbox.arrival_statuses(http) == [429, 429, 429, 200]
    assert [n.params["text"] for n in sandbox.store.notes("leads", DEMO_LEAD_ID)] == ["still here"]
    assert [a.id for a in added] == [n.id for n in sandbox.store.notes("leads", DEMO_LEAD_ID)]
    # Retry-After 1, doubled for each further refusal.
    assert waits.seconds == [1.0, 2.0, 4.0]
    # Every repeat takes its own turn in the account's rate limit.
    assert turns == 4


@pytest.mark.parametrize(
    ("retry_after", "jitter_share", "expected"),
    [
        (3, 0.0, [3.0, 6.0]),
        # The jitter is added on top, never taken off what Kommo asked for.
        (2, 1.0, [2.5, 5.0]),
        # "Come back at once" still waits the policy's base delay, not a busy loop.
        (0, 0.0, [0.5, 1.0]),
    ],
)
async def test_the_waits_follow_retry_after(
    sandbox: RunningSandbox,
    http: httpx.AsyncClient,
    waits: RecordedWaits,
    retry_after: int,
    jitter_share: float,
    expected: list[float],
) -> None:
    transport = _patient_transport(sandbox, http, waits, jitter_share=jitter_share)
    await sandbox.switch_faults(http, storm_429=2, retry_after=retry_after)

    lead = await LeadsApi(transport).get(DEMO_LEAD_ID)

    assert lead.id == DEMO_LEAD_ID
    assert waits.seconds == expected


async def test_a_long_429_storm_surfaces_as_rate_limited_within_the_wait_budget(
    sandbox: RunningSandbox, http: httpx.AsyncClient, waits: RecordedWaits
) -> None:
    transport = _patient_transport(sandbox, http, waits)
    await sandbox.switch_faults(http, storm_429=100, retry_after=1)

    with pytest.raises(KommoRateLimited) as raised:
        await NotesApi(transport).add("leads", [NoteInput.common(DEMO_LEAD_ID, "later")])

    assert raised.value.retryable
    assert raised.value.retry_after == 1.0
    # 1 + 2 + 4 seconds waited; the next wait (8) would pass the 10-second budget.
    assert waits.seconds == [1.0, 2.0, 4.0]
    assert await sandbox.arrival_statuses(http) == [429] * 4
    assert sandbox.store.notes() == []


async def test_the_number_of_repeats_is_bounded_too(
    sandbox: RunningSandbox, http: httpx.AsyncClient, waits: RecordedWaits
) -> None:
    transport = _patient_transport(sandbox, http, waits, rate_limited_repeats=1)
    await sandbox.switch_faults(http, storm_429=2, retry_after=1)

    with pytest.raises(KommoRateLimited):
        await LeadsApi(transport).get(DEMO_LEAD_ID)

    assert waits.seconds == [1.0]
    assert await sandbox.arrival_statuses(http) == [429, 429]


async def test_a_retry_after_beyond_the_budget_is_not_waited_for(
    sandbox: RunningSandbox, http: httpx.AsyncClient, waits: RecordedWaits
) -> None:
    transport = _patient_transport(sandbox, http, waits)
    await sandbox.switch_faults(http, storm_429=1, retry_after=60)

    with pytest.raises(KommoRateLimited) as raised:
        await LeadsApi(transport).get(DEMO_LEAD_ID)

    assert raised.value.retry_after == 60.0
    assert waits.seconds == []
    assert await sandbox.arrival_statuses(http) == [429]


async def test_a_read_answered_5xx_is_repeated_a_couple_of_times(
    sandbox: RunningSandbox, http: httpx.AsyncClient, waits: RecordedWaits
) -> None:
    transport = _patient_transport(sandbox, http, waits)
    await sandbox.switch_faults(http, errors_5xx=2, error_status=502)

    lead = await LeadsApi(transport).get(DEMO_LEAD_ID)

    assert lead.id == DEMO_LEAD_ID
    assert await sandbox.arrival_statuses(http) == [502, 502, 200]
    assert waits.seconds == [0.5, 1.0]

    await sandbox.switch_faults(http, errors_5xx=3)
    with pytest.raises(KommoUnavailable) as raised:
        await LeadsApi(transport).get(DEMO_LEAD_ID)

    assert raised.value.status == 502
    assert (await sandbox.arrival_statuses(http))[3:] == [502, 502, 502]


async def test_a_create_answered_5xx_is_left_to_the_jobs_retry(
    sandbox: RunningSandbox, http: httpx.AsyncClient, waits: RecordedWaits
) -> None:
    """A create answered 500 may have been done: repeating it blindly could write it twice."""
    transport = _patient_transport(sandbox, http, waits)
    await sandbox.switch_faults(http, errors_5xx=1, error_status=500)

    with pytest.raises(KommoUnavailable):
        await NotesApi(transport).add("leads", [NoteInput.common(DEMO_LEAD_ID, "once")])

    assert await sandbox.arrival_statuses(http) == [500]
    assert waits.seconds == []


async def test_waits_and_429s_are_counted(
    sandbox: RunningSandbox, http: httpx.AsyncClient, waits: RecordedWaits
) -> None:
    rate_limited = {"reason": "rate_limited"}
    before = (
        _sample("kommo_responses_429_total"),
        _sample("kommo_retry_wait_seconds_count", rate_limited),
        _sample("kommo_retry_wait_seconds_sum", rate_limited),
    )
    transport = _patient_transport(sandbox, http, waits)
    await sandbox.switch_faults(http, storm_429=2, retry_after=1)

    await LeadsApi(transport).get(DEMO_LEAD_ID)

    after = (
        _sample("kommo_responses_429_total"),
        _sample("kommo_retry_wait_seconds_count", rate_limited),
        _sample("kommo_retry_wait_seconds_sum", rate_limited),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [2, 2, 3.0]


@pytest.mark.parametrize(
    "limits",
    [{"rate_limited_repeats": -1}, {"base_delay": 0}, {"max_total_wait": -1}, {"jitter": -0.1}],
)
def test_a_policy_that_makes_no_sense_is_refused(limits: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=r"cannot be negative|must be positive"):
        RetryPolicy(**limits)


# --- error mapping ---------------------------------------------------------------------------


# Errors are mapped here, not ridden out: a refusal surfaces from its first answer.
NEVER_REPEAT = RetryPolicy(rate_limited_repeats=0, unavailable_repeats=0)


def _transport_answering(response: httpx.Response) -> tuple[KommoTransport, httpx.AsyncClient]:
    """Responses the sandbox never gives (402, 404, odd bodies…) come from a mock."""
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: response))
    return KommoTransport("https://example.kommo.com", TOKEN, http, retry=NEVER_REPEAT), http


@pytest.mark.parametrize(
    ("status", "error_type", "retryable"),
    [
        (401, KommoAuthError, False),
        (402, KommoPaymentRequired, False),
        (403, KommoBlocked, False),
        (404, KommoNotFound, False),
        (418, KommoError, False),
        (500, KommoUnavailable, True),
        (502, KommoUnavailable, True),
        (503, KommoUnavailable, True),
        (504, KommoGatewayTimeout, True),
    ],
)
async def test_statuses_map_to_typed_errors(
    status: int, error_type: type[KommoError], retryable: bool
) -> None:
    problem = {"title": "Some title", "status": status, "detail": "what Kommo said"}
    transport, http = _transport_answering(httpx.Response(status, json=problem))

    async with http:
        with pytest.raises(KommoError) as raised:
            await LeadsApi(transport).get(DEMO_LEAD_ID)

    assert type(raised.value) is error_type
    assert raised.value.status == status
    assert raised.value.retryable is retryable
    assert raised.value.detail == "what Kommo said"
    assert isinstance(raised.value, KommoAccountStopped) is (status in (402, 403))


async def test_400_carries_kommos_validation_errors() -> None:
    """Body from Kommo's documented example (amoCRM "Справочник ошибок и ответов API")."""
    problem = {
        "validation-errors": [
            {
                "request_id": "0",
                "errors": [
                    {
                        "code": "NotSupportedChoice",
                        "path": "custom_fields_values.0.field_id",
                        "detail": "The value you selected is not a valid choice.",
                    }
                ],
            }
        ],
        "title": "Bad Request",
        "type": "https://httpstatus.es/400",
        "status": 400,
        "detail": "Request validation failed",
    }
    transport, http = _transport_answering(httpx.Response(400, json=problem))

    async with http:
        with pytest.raises(KommoValidationError) as raised:
            await LeadsApi(transport).add([LeadInput(name="x")])

    assert not raised.value.retryable
    assert raised.value.issues == [
        ValidationIssue(
            "0",
            "custom_fields_values.0.field_id",
            "NotSupportedChoice",
            "The value you selected is not a valid choice.",
        )
    ]


@pytest.mark.parametrize(
    ("headers", "body", "expected"),
    [
        ({"Retry-After": "7"}, {}, 7.0),
        ({}, {"retry_after": 5}, 5.0),
        ({"Retry-After": "2"}, {"retry_after": 5}, 2.0),
        ({}, {}, None),
        ({"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}, {"retry_after": "soon"}, None),
    ],
)
async def test_429_is_rate_limited_with_retry_after_from_header_or_body(
    headers: dict[str, str], body: dict[str, object], expected: float | None
) -> None:
    transport, http = _transport_answering(httpx.Response(429, headers=headers, json=body))

    async with http:
        with pytest.raises(KommoRateLimited) as raised:
            await LeadsApi(transport).get(DEMO_LEAD_ID)

    assert raised.value.retry_after == expected
    assert raised.value.retryable


async def test_5xx_with_an_html_page_is_retryable_unavailable() -> None:
    transport, http = _transport_answering(httpx.Response(503, text="<html>Bad gateway</html>"))

    async with http:
        with pytest.raises(KommoUnavailable) as raised:
            await NotesApi(transport).add("leads", [NoteInput.common(DEMO_LEAD_ID, "hello")])

    assert raised.value.status == 503
    assert raised.value.detail == "Service Unavailable"


async def test_success_with_an_unexpected_body_is_a_kommo_error() -> None:
    transport, http = _transport_answering(httpx.Response(200, json={"_embedded": {}}))

    async with http:
        with pytest.raises(KommoError, match="unexpected response body"):
            await NotesApi(transport).add("leads", [NoteInput.common(DEMO_LEAD_ID, "hello")])


async def test_wrong_token_is_an_auth_error_that_does_not_leak_the_token(
    sandbox: RunningSandbox, http: httpx.AsyncClient
) -> None:
    wrong_token = "not-the-sandbox-token"
    kommo = KommoClient(sandbox.url, wrong_token, http)

    with pytest.raises(KommoAuthError) as raised:
        await kommo.add_note("leads", DEMO_LEAD_ID, "never written")

    assert raised.value.status == 401
    assert not raised.value.retryable
    assert wrong_token not in str(raised.value)
    assert wrong_token not in repr(kommo)
    assert sandbox.store.notes() == []


async def test_validation_error_from_the_sandbox_names_the_field(kommo: KommoClient) -> None:
    with pytest.raises(KommoValidationError) as raised:
        await kommo.add_note("leads", DEMO_LEAD_ID, "")

    assert raised.value.status == 400
    assert [(i.request_id, i.path) for i in raised.value.issues] == [("0", "params.text")]


async def test_connection_failure_is_retryable_unavailable() -> None:
    async with httpx.AsyncClient() as http:
        # Port 1 is reserved and nothing listens there: the connection is refused at once.
        kommo = KommoClient("http://127.0.0.1:1", TOKEN, http)
        with pytest.raises(KommoUnavailable) as raised:
            await kommo.list_notes("leads", DEMO_LEAD_ID)

    assert raised.value.status is None
    assert raised.value.retryable
    assert TOKEN not in str(raised.value)


# --- metrics ---------------------------------------------------------------------------------


def _sample(name: str, labels: dict[str, str] | None = None) -> float:
    return REGISTRY.get_sample_value(name, labels or {}) or 0.0


async def test_requests_are_counted_and_timed_by_templated_endpoint(kommo: KommoClient) -> None:
    found = {"endpoint": "/api/v4/leads/{id}", "status": "200"}
    missing = {"endpoint": "/api/v4/leads/{id}", "status": "204"}
    before = (
        _sample("kommo_requests_total", found),
        _sample("kommo_requests_total", missing),
        _sample("kommo_request_duration_seconds_count", {"endpoint": "/api/v4/leads/{id}"}),
    )

    await kommo.leads.get(DEMO_LEAD_ID)
    with pytest.raises(KommoNotFound):
        await kommo.leads.get(999_999)

    after = (
        _sample("kommo_requests_total", found),
        _sample("kommo_requests_total", missing),
        _sample("kommo_request_duration_seconds_count", {"endpoint": "/api/v4/leads/{id}"}),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 2]


async def test_429s_and_transport_failures_are_counted() -> None:
    before_429 = _sample("kommo_responses_429_total")
    before_error = _sample(
        "kommo_requests_total", {"endpoint": "/api/v4/account", "status": "error"}
    )
    transport, http = _transport_answering(httpx.Response(429))
    async with http:
        with pytest.raises(KommoRateLimited):
            await AccountApi(transport).get()
    async with httpx.AsyncClient() as unreachable:
        with pytest.raises(KommoUnavailable):
            await KommoClient("http://127.0.0.1:1", TOKEN, unreachable).account.get()

    assert _sample("kommo_responses_429_total") - before_429 == 1
    after_error = _sample(
        "kommo_requests_total", {"endpoint": "/api/v4/account", "status": "error"}
    )
    assert after_error - before_error == 1


@pytest.mark.parametrize(
    ("path", "template"),
    [
        ("/api/v4/leads", "/api/v4/leads"),
        ("/api/v4/leads/123?with=contacts", "/api/v4/leads/{id}"),
        ("/api/v4/contacts/55/notes", "/api/v4/contacts/{id}/notes"),
        ("/api/v4/events/01pz58t6p04vdgqjg7b8j4x3xx", "/api/v4/events/{id}"),
        ("/api/v4/leads/custom_fields", "/api/v4/leads/custom_fields"),
    ],
)
def test_endpoints_are_templated_so_ids_never_become_labels(path: str, template: str) -> None:
    assert endpoint_template(path) == template


# --- request encoding ------------------------------------------------------------------------


def test_filters_are_sent_as_php_bracket_parameters() -> None:
    params = bracketed(
        "filter",
        {
            "id": [1, 2],
            "statuses": [{"pipeline_id": 5, "status_id": 6}],
            "created_at": {"from": 10},
            "is_completed": False,
        },
    )

    assert params == [
        ("filter[id][]", 1),
        ("filter[id][]", 2),
        ("filter[statuses][0][pipeline_id]", 5),
        ("filter[statuses][0][status_id]", 6),
        ("filter[created_at][from]", 10),
        ("filter[is_completed]", 0),
    ]


def test_list_filters_render_only_what_was_set_in_kommos_keys() -> None:
    leads = LeadFilter(
        ids=[1], statuses=[(5, 6)], created_at=TimeRange(start=10), updated_at=TimeRange()
    )

    assert leads.to_kommo() == {
        "id": [1],
        "created_at": {"from": 10},
        "statuses": [{"pipeline_id": 5, "status_id": 6}],
    }
    assert ContactFilter(names=["Ann"], updated_at=TimeRange(end=20)).to_kommo() == {
        "name": ["Ann"],
        "updated_at": {"to": 20},
    }


def test_write_models_render_only_what_was_set_in_kommos_shape() -> None:
    lead = LeadInput(
        name="Deal",
        custom_fields_values=[
            CustomFieldInput.of(8_000_001, 100),
            CustomFieldInput.choice("SOURCE", 7),
            CustomFieldInput.of("PHONE", "+1 555", enum_code="WORK"),
        ],
        tags=[TagRef(name="vip"), TagRef(id=3)],
        contact_ids=[11],
        company_id=12,
    )

    assert lead.to_kommo() == {
        "name": "Deal",
        "custom_fields_values": [
            {"field_id": 8_000_001, "values": [{"value": 100}]},
            {"field_code": "SOURCE", "values": [{"enum_id": 7}]},
            {"field_code": "PHONE", "values": [{"value": "+1 555", "enum_code": "WORK"}]},
        ],
        "_embedded": {
            "tags": [{"name": "vip"}, {"id": 3}],
            "contacts": [{"id": 11}],
            "companies": [{"id": 12}],
        },
    }
    assert LeadUpdate(id=5, tags=None).to_kommo() == {"id": 5, "_embedded": {"tags": None}}
    assert TaskUpdate(id=9, is_completed=True, result_text="Done").to_kommo() == {
        "id": 9,
        "is_completed": True,
        "result": {"text": "Done"},
    }
    assert TaskInput(text="Call", complete_till=1).to_kommo() == {
        "text": "Call",
        "complete_till": 1,
        "task_type_id": 1,
    }


def test_write_models_refuse_what_kommo_would() -> None:
    with pytest.raises(ValueError, match="exactly one of field_id and field_code"):
        CustomFieldInput(field_id=1, field_code="PHONE", values=[])
    with pytest.raises(ValueError, match="both entity_id and entity_type"):
        TaskInput(text="Call", complete_till=1, entity_id=5)
    with pytest.raises(ValueError, match="exactly one of id and name"):
        TagRef()
    with pytest.raises(ValueError, match="greater than or equal to 0"):
        LeadInput(price=-1)
