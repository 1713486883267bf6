"""The LLM gateway against the fake OpenAI server over real HTTP, recording into PostgreSQL.

Waits between retries go through an injected sleep that only notes them, so no test waits
for a backoff; the timeouts are real, against a fake that answers too late.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from decimal import Decimal
from typing import Any

import httpx
import pytest
import structlog
from prometheus_client import REGISTRY
from sqlalchemy import select, update

from agent_platform.config import Settings
from agent_platform.db.session import transaction
from agent_platform.llm import service as llm_service
from agent_platform.llm.errors import (
    BudgetExceededError,
    FailureKind,
    LlmRejectedError,
    LlmUnavailableError,
    MalformedToolCallError,
)
from agent_platform.llm.gateway import LlmGateway, create_llm_gateway
from agent_platform.llm.models import LlmBudget, LlmCall
from agent_platform.llm.pricing import TokenPrices
from agent_platform.llm.tools import ToolCall, ToolDefinition
from agent_platform.llm.types import CallOwner, ChatRequest, ChatResult, CostSource
from agent_platform.services import Services
from tests.support.kommo_oauth import create_organization

REPLY = "Our prices start at 100 USD."  # what the conftest's fake LLM answers
MESSAGES = [
    {"role": "system", "content": "You sell bicycles."},
    {"role": "user", "content": "How much is the red one?"},
]
PRICED_MODEL = "priced/model"
PRICES = {PRICED_MODEL: TokenPrices(input=Decimal(2), output=Decimal(8))}
TASK_TOOL = ToolDefinition(
    name="create_task",
    description="Create a task for a manager.",
    parameters={"type": "object", "properties": {"text": {"type": "string"}}},
)
TASK_ARGUMENTS = '{"text": "Call the customer back"}'


class RecordedSleeps:
    """Stands in for asyncio.sleep: notes each wait and returns at once."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


GatewayFactory = Callable[..., Awaitable[LlmGateway]]


@pytest.fixture
def sleeps() -> RecordedSleeps:
    return RecordedSleeps()


@pytest.fixture
async def make_gateway(
    services: Services, settings: Settings, sleeps: RecordedSleeps
) -> AsyncIterator[GatewayFactory]:
    """Gateways built as production builds them, from settings (with `overrides`)."""
    opened: list[LlmGateway] = []

    async def make(**overrides: Any) -> LlmGateway:
        values = {"llm_timeout_seconds": 0.5, "llm_max_retries": 2, "llm_prices": PRICES}
        tuned = settings.model_copy(update=values | overrides)
        gateway = create_llm_gateway(tuned, services.sessions, sleep=sleeps)
        assert gateway is not None
        opened.append(gateway)
        return gateway

    yield make
    for gateway in opened:
        await gateway.close()


@pytest.fixture
async def gateway(make_gateway: GatewayFactory) -> LlmGateway:
    return await make_gateway()


@pytest.fixture
async def organization_id(services: Services) -> uuid.UUID:
    organization_id, _ = await create_organization(services)
    return organization_id


def ask(organization_id: uuid.UUID, model: str = "test/model", **fields: Any) -> ChatRequest:
    return ChatRequest(
        owner=CallOwner(organization_id, agent_id=None),
        model=model,
        messages=MESSAGES,
        temperature=0.2,
        **fields,
    )


def configure(fake_llm_url: str, **config: Any) -> None:
    httpx.post(f"{fake_llm_url}/_fake/config", json=config).raise_for_status()


def models_asked(fake_llm_url: str) -> list[str]:
    recorded = httpx.get(f"{fake_llm_url}/_fake/requests").json()
    return [r["body"]["model"] for r in recorded if r["path"] == "/v1/chat/completions"]


def bodies_sent(fake_llm_url: str) -> list[dict[str, Any]]:
    return [r["body"] for r in httpx.get(f"{fake_llm_url}/_fake/requests").json()]


async def recorded_calls(services: Services) -> list[LlmCall]:
    async with transaction(services.sessions) as session:
        return list((await session.scalars(select(LlmCall).order_by(LlmCall.created_at))).all())


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def words(text: str) -> int:
    """How the fake counts tokens."""
    return len(text.split())


PROMPT_TOKENS = sum(words(message["content"]) for message in MESSAGES)


async def test_a_completion_is_answered_and_recorded_with_the_providers_cost(
    gateway: LlmGateway, services: Services, organization_id: uuid.UUID, fake_llm_url: str
) -> None:
    configure(fake_llm_url, cost=0.0042)
    tokens_before = metric("llm_tokens_total", model="test/model", kind="output")

    result = await gateway.complete(ask(organization_id, max_tokens=300))

    assert (result.text, result.model, result.tool_calls) == (REPLY, "test/model", ())
    assert result.usage.cost_usd == Decimal("0.0042")
    assert result.usage.cost_source is CostSource.PROVIDER
    [sent] = bodies_sent(fake_llm_url)
    assert (sent["model"], sent["messages"], sent["temperature"]) == ("test/model", MESSAGES, 0.2)
    assert sent["max_tokens"] == 300
    [call] = await recorded_calls(services)
    assert (call.organization_id, call.status, call.error_kind) == (organization_id, "ok", None)
    assert (call.model_requested, call.model_used) == ("test/model", "test/model")
    assert (call.tokens_in, call.tokens_out) == (PROMPT_TOKENS, words(REPLY))
    assert (call.cost_usd, call.cost_source) == (Decimal("0.0042"), "provider")
    assert call.latency_ms is not None
    assert call.latency_ms >= 0
    after = metric("llm_tokens_total", model="test/model", kind="output")
    assert after - tokens_before == words(REPLY)


async def test_without_the_providers_cost_the_price_table_prices_the_call(
    gateway: LlmGateway, services: Services, organization_id: uuid.UUID
) -> None:
    result = await gateway.complete(ask(organization_id, model=PRICED_MODEL))

    expected = (Decimal(2) * PROMPT_TOKENS + Decimal(8) * words(REPLY)) / 1_000_000
    assert result.usage.cost_usd == expected
    assert result.usage.cost_source is CostSource.PRICE_TABLE
    [call] = await recorded_calls(services)
    assert (call.cost_usd, call.cost_source) == (expected, "price_table")


async def test_a_model_nobody_prices_has_an_unknown_cost_not_a_guess(
    gateway: LlmGateway, services: Services, organization_id: uuid.UUID
) -> None:
    result = await gateway.complete(ask(organization_id, model="unpriced/model"))

    assert (result.usage.cost_usd, result.usage.cost_source) == (None, None)
    [call] = await recorded_calls(services)
    assert (call.tokens_in, call.cost_usd, call.cost_source) == (PROMPT_TOKENS, None, None)


async def test_a_stream_yields_the_text_in_pieces_then_the_result(
    gateway: LlmGateway, services: Services, organization_id: uuid.UUID, fake_llm_url: str
) -> None:
    configure(fake_llm_url, cost=0.001)

    events = [event async for event in gateway.stream(ask(organization_id))]

    *pieces, result = events
    assert len(pieces) > 2
    assert all(isinstance(piece, str) for piece in pieces)
    assert "".join(str(piece) for piece in pieces) == REPLY
    assert isinstance(result, ChatResult)
    assert (result.text, result.finish_reason) == (REPLY, "stop")
    assert (result.usage.tokens_out, result.usage.cost_usd) == (words(REPLY), Decimal("0.001"))
    [sent] = bodies_sent(fake_llm_url)
    assert (sent["stream"], sent["stream_options"]) == (True, {"include_usage": True})
    [call] = await recorded_calls(services)
    assert (call.status, call.tokens_out, call.cost_usd) == ("ok", words(REPLY), Decimal("0.001"))


@pytest.mark.parametrize("streamed", [False, True], ids=["complete", "stream"])
async def test_tool_calls_go_out_as_openai_tools_and_come_back_typed(
    gateway: LlmGateway, organization_id: uuid.UUID, fake_llm_url: str, streamed: bool
) -> None:
    configure(fake_llm_url, tool_calls=[{"name": "create_task", "arguments": TASK_ARGUMENTS}])
    request = ask(organization_id, tools=[TASK_TOOL])

    if streamed:
        *_, result = [event async for event in gateway.stream(request)]
    else:
        result = await gateway.complete(request)

    assert isinstance(result, ChatResult)
    [call] = result.tool_calls
    assert call == ToolCall(call.id, "create_task", {"text": "Call the customer back"})
    assert call.id
    assert (result.text, result.finish_reason) == ("", "tool_calls")
    [sent] = bodies_sent(fake_llm_url)
    assert sent["tools"] == [
        {
            "type": "function",
            "function": {
                "name": "create_task",
                "description": "Create a task for a manager.",
                "parameters": {"type": "object", "properties": {"text": {"type": "string"}}},
            },
        }
    ]


async def test_a_malformed_tool_call_is_a_typed_error_and_its_cost_is_still_recorded(
    gateway: LlmGateway, services: Services, organization_id: uuid.UUID, fake_llm_url: str
) -> None:
    configure(
        fake_llm_url,
        cost=0.002,
        tool_calls=[{"name": "create_task", "arguments": '{"text": "Call the cus'}],
    )

    with pytest.raises(MalformedToolCallError) as raised:
        await gateway.complete(ask(organization_id, tools=[TASK_TOOL]))

    assert raised.value.tool == "create_task"
    [call] = await recorded_calls(services)
    assert (call.status, call.error_kind) == ("error", "malformed_tool_call")
    assert call.cost_usd == Decimal("0.002")


async def test_a_429_is_retried_after_the_wait_the_provider_asked_for(
    gateway: LlmGateway,
    services: Services,
    organization_id: uuid.UUID,
    fake_llm_url: str,
    sleeps: RecordedSleeps,
) -> None:
    configure(fake_llm_url, fail_next=2, fail_status=429, retry_after="3")
    limited_before = metric("llm_requests_total", model="test/model", status="rate_limited")

    result = await gateway.complete(ask(organization_id))

    assert result.text == REPLY
    assert sleeps.waits == [3.0, 3.0]
    assert models_asked(fake_llm_url) == ["test/model"] * 3
    [call] = await recorded_calls(services)
    assert (call.status, call.model_used) == ("ok", "test/model")
    limited = metric("llm_requests_total", model="test/model", status="rate_limited")
    assert limited - limited_before == 2


async def test_a_model_answering_500_gives_way_to_the_fallback_after_its_retries(
    gateway: LlmGateway,
    services: Services,
    organization_id: uuid.UUID,
    fake_llm_url: str,
    sleeps: RecordedSleeps,
) -> None:
    configure(fake_llm_url, models={"broken/model": {"fail_always": True, "fail_status": 500}})

    result = await gateway.complete(
        ask(organization_id, model="broken/model", fallback_models=["backup/model"])
    )

    assert (result.text, result.model) == (REPLY, "backup/model")
    assert models_asked(fake_llm_url) == ["broken/model"] * 3 + ["backup/model"]
    # Backoff with jitter: about 0.5 s, then about 1 s (LLM_RETRY_BASE_SECONDS is 0.5).
    first, second = sleeps.waits
    assert 0.25 <= first <= 0.5
    assert 0.5 <= second <= 1.0
    [call] = await recorded_calls(services)
    assert (call.status, call.model_requested, call.model_used) == (
        "ok",
        "broken/model",
        "backup/model",
    )


async def test_a_model_that_answers_too_late_gives_way_to_the_fallback(
    make_gateway: GatewayFactory, organization_id: uuid.UUID, fake_llm_url: str
) -> None:
    gateway = await make_gateway(llm_max_retries=0, llm_timeout_seconds=0.3)
    configure(fake_llm_url, models={"slow/model": {"delay_seconds": 5}})
    timeouts_before = metric("llm_requests_total", model="slow/model", status="timeout")

    result = await gateway.complete(
        ask(organization_id, model="slow/model", fallback_models=["backup/model"])
    )

    assert result.model == "backup/model"
    assert models_asked(fake_llm_url) == ["slow/model", "backup/model"]
    timeouts = metric("llm_requests_total", model="slow/model", status="timeout")
    assert timeouts - timeouts_before == 1


async def test_a_retry_after_longer_than_the_longest_wait_moves_on_at_once(
    gateway: LlmGateway, organization_id: uuid.UUID, fake_llm_url: str, sleeps: RecordedSleeps
) -> None:
    configure(
        fake_llm_url,
        models={"busy/model": {"fail_always": True, "fail_status": 429, "retry_after": "120"}},
    )

    result = await gateway.complete(
        ask(organization_id, model="busy/model", fallback_models=["backup/model"])
    )

    assert result.model == "backup/model"
    assert sleeps.waits == []
    assert models_asked(fake_llm_url) == ["busy/model", "backup/model"]


async def test_when_every_model_fails_the_error_is_typed_and_recorded(
    gateway: LlmGateway, services: Services, organization_id: uuid.UUID, fake_llm_url: str
) -> None:
    configure(fake_llm_url, fail_always=True, fail_status=503)

    with pytest.raises(LlmUnavailableError) as raised:
        await gateway.complete(ask(organization_id, model="a/model", fallback_models=["b/model"]))

    failures = raised.value.failures
    assert [(f.model, f.kind) for f in failures] == [("a/model", FailureKind.SERVER_ERROR)] * 3 + [
        ("b/model", FailureKind.SERVER_ERROR)
    ] * 3
    assert raised.value.retryable, "a job may try the same work later"
    [call] = await recorded_calls(services)
    assert (call.status, call.error_kind) == ("error", "server_error")
    assert (call.model_requested, call.model_used) == ("a/model", "b/model")
    assert (call.tokens_in, call.cost_usd) == (None, None)


async def test_a_refused_request_is_neither_retried_nor_sent_to_a_fallback(
    gateway: LlmGateway, services: Services, organization_id: uuid.UUID, fake_llm_url: str
) -> None:
    configure(fake_llm_url, fail_always=True, fail_status=400)

    with pytest.raises(LlmRejectedError):
        await gateway.complete(ask(organization_id, model="a/model", fallback_models=["b/model"]))

    assert models_asked(fake_llm_url) == ["a/model"]
    [call] = await recorded_calls(services)
    assert (call.status, call.error_kind) == ("error", "rejected")


async def test_a_stream_the_caller_stops_reading_is_still_recorded(
    gateway: LlmGateway, services: Services, organization_id: uuid.UUID
) -> None:
    stream = gateway.stream(ask(organization_id))
    first = await anext(stream)
    await stream.aclose()

    assert isinstance(first, str)
    [call] = await recorded_calls(services)
    assert (call.status, call.error_kind, call.model_used) == ("error", "abandoned", "test/model")


async def set_budget(
    services: Services, organization_id: uuid.UUID, limit: str, warning: str = "0.80"
) -> None:
    await llm_service.set_budget(
        services,
        organization_id,
        monthly_limit_usd=Decimal(limit),
        warning_ratio=Decimal(warning),
    )


async def test_a_spent_budget_stops_calls_before_any_request(
    gateway: LlmGateway, services: Services, organization_id: uuid.UUID, fake_llm_url: str
) -> None:
    await set_budget(services, organization_id, "0.01")
    configure(fake_llm_url, cost=0.01)
    await gateway.complete(ask(organization_id))
    blocked_before = metric("llm_requests_total", model="test/model", status="budget_blocked")

    with pytest.raises(BudgetExceededError) as raised:
        await gateway.complete(ask(organization_id))
    with pytest.raises(BudgetExceededError):
        await anext(gateway.stream(ask(organization_id)))

    assert (raised.value.spent_usd, raised.value.limit_usd) == (Decimal("0.01"), Decimal("0.01"))
    assert not raised.value.retryable
    assert models_asked(fake_llm_url) == ["test/model"], "nothing sent once the budget is spent"
    calls = await recorded_calls(services)
    assert [(c.status, c.model_used, c.latency_ms is None) for c in calls[1:]] == [
        ("budget_blocked", None, True),
        ("budget_blocked", None, True),
    ]
    blocked = metric("llm_requests_total", model="test/model", status="budget_blocked")
    assert blocked - blocked_before == 2


async def test_another_organizations_spend_does_not_count(
    gateway: LlmGateway, services: Services, organization_id: uuid.UUID, fake_llm_url: str
) -> None:
    other_id, _ = await create_organization(services, name="Beta")
    await set_budget(services, organization_id, "0.01")
    configure(fake_llm_url, cost=0.05)

    await gateway.complete(ask(other_id))
    result = await gateway.complete(ask(organization_id))

    assert result.text == REPLY


async def test_crossing_the_warning_level_warns_once_a_month(
    gateway: LlmGateway, services: Services, organization_id: uuid.UUID, fake_llm_url: str
) -> None:
    await set_budget(services, organization_id, "1.00", warning="0.50")
    configure(fake_llm_url, cost=0.3)

    with structlog.testing.capture_logs() as logs:
        for _ in range(3):  # 0.30, 0.60 (warning), 0.90
            await gateway.complete(ask(organization_id))
    warnings = [entry for entry in logs if entry["event"] == "llm_budget_warning"]
    ratio = metric("llm_budget_used_ratio", organization_id=str(organization_id))

    assert len(warnings) == 1
    assert (warnings[0]["spent_usd"], warnings[0]["limit_usd"]) == ("0.60000000", "1.00")
    assert ratio == pytest.approx(0.9)

    # The warning given belongs to an earlier month: this month warns again.
    async with transaction(services.sessions) as session:
        await session.execute(
            update(LlmBudget)
            .where(LlmBudget.organization_id == organization_id)
            .values(warned_month=date(2000, 1, 1))
        )
    with structlog.testing.capture_logs() as logs:
        await gateway.complete(ask(organization_id))
    assert [entry["event"] for entry in logs].count("llm_budget_warning") == 1
