"""The LLM gateway's pure rules: retry waits, Retry-After, prices, tool calls, budget figures."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from zoneinfo import ZoneInfo

import pytest

from agent_platform.llm.budget import BudgetState, month_start
from agent_platform.llm.errors import AttemptFailure, FailureKind, MalformedToolCallError
from agent_platform.llm.pricing import PriceTable, TokenPrices, load_price_table
from agent_platform.llm.retry import RetryPolicy, retry_after_seconds
from agent_platform.llm.tools import RawToolCall, ToolCall, parse_tool_calls
from agent_platform.llm.types import CostSource, Usage

POLICY = RetryPolicy(max_retries=3, base_seconds=1.0, max_seconds=5.0)
NOW = datetime(2026, 12, 2, 16, 10, tzinfo=UTC)


def failure(retry_after: float | None = None) -> AttemptFailure:
    return AttemptFailure("m", FailureKind.SERVER_ERROR, retry_after, "503")


def test_backoff_doubles_with_jitter_up_to_its_ceiling() -> None:
    for retries_done, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0)]:
        waits = {POLICY.delay_before_retry(retries_done, failure()) for _ in range(50)}
        assert all(wait is not None and ceiling / 2 <= wait <= ceiling for wait in waits)
        assert len(waits) > 1, "the waits are spread, not all equal"


def test_backoff_never_waits_longer_than_the_maximum() -> None:
    policy = RetryPolicy(max_retries=10, base_seconds=1.0, max_seconds=5.0)

    wait = policy.delay_before_retry(8, failure())

    assert wait is not None
    assert wait <= 5.0


def test_retries_stop_after_the_maximum() -> None:
    assert POLICY.delay_before_retry(3, failure()) is None
    assert RetryPolicy(0, 1.0, 5.0).delay_before_retry(0, failure()) is None


def test_retry_after_is_honoured_exactly_and_a_long_one_moves_on() -> None:
    assert POLICY.delay_before_retry(0, failure(retry_after=3.0)) == 3.0
    assert POLICY.delay_before_retry(0, failure(retry_after=0.0)) == 0.0
    assert POLICY.delay_before_retry(0, failure(retry_after=60.0)) is None


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "2"}, 2.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),
        ({"retry-after": format_datetime(NOW + timedelta(seconds=30), usegmt=True)}, 30.0),
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after_header_forms(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after_seconds(headers, NOW) == seconds


PRICES = PriceTable({"priced/model": TokenPrices(input=Decimal("1.5"), output=Decimal("6"))})


def test_the_providers_cost_comes_first() -> None:
    usage = PRICES.usage("priced/model", 1000, 500, Decimal("0.123456789"))

    assert usage == Usage(1000, 500, Decimal("0.12345679"), CostSource.PROVIDER)


def test_without_the_providers_cost_the_price_table_estimates_it() -> None:
    usage = PRICES.usage("priced/model", 1000, 500, None)

    # 1000 × 1.5 / 1M + 500 × 6 / 1M
    assert usage == Usage(1000, 500, Decimal("0.00450000"), CostSource.PRICE_TABLE)


def test_an_unknown_model_or_missing_tokens_have_an_unknown_cost() -> None:
    assert PRICES.usage("other/model", 1000, 500, None) == Usage(1000, 500, None, None)
    assert PRICES.usage("priced/model", None, None, None) == Usage(None, None, None, None)


def test_packaged_prices_load_and_settings_override_them() -> None:
    packaged = load_price_table({})
    overridden = load_price_table(
        {"openai/gpt-4o-mini": TokenPrices(input=Decimal(1), output=Decimal(1))}
    )

    assert packaged.estimate("openai/gpt-4o-mini", 1_000_000, 1_000_000) == Decimal("0.75")
    assert overridden.estimate("openai/gpt-4o-mini", 1_000_000, 1_000_000) == Decimal(2)
    assert overridden.estimate("openai/gpt-4o", 1_000_000, 0) == Decimal("2.5")


def test_tool_calls_are_parsed_into_typed_calls() -> None:
    calls = parse_tool_calls(
        [
            RawToolCall("call_1", "create_task", '{"text": "Call back", "due_in_hours": 24}'),
            RawToolCall("call_2", "hand_off", ""),
        ]
    )

    assert calls == (
        ToolCall("call_1", "create_task", {"text": "Call back", "due_in_hours": 24}),
        ToolCall("call_2", "hand_off", {}),
    )


@pytest.mark.parametrize("arguments", ['{"text": "Call', "[1, 2]", "null"])
def test_malformed_tool_call_arguments_are_a_typed_error(arguments: str) -> None:
    with pytest.raises(MalformedToolCallError) as raised:
        parse_tool_calls([RawToolCall("call_1", "create_task", arguments)])

    assert raised.value.tool == "create_task"
    assert raised.value.arguments == arguments
    assert raised.value.kind == "malformed_tool_call"


def budget(spent: str, limit: str | None, warning: str = "0.80") -> BudgetState:
    return BudgetState(
        month=date(2026, 12, 1),
        spent_usd=Decimal(spent),
        limit_usd=Decimal(limit) if limit is not None else None,
        warning_ratio=Decimal(warning),
    )


def test_budget_figures() -> None:
    below = budget("5", "10")
    at_warning = budget("8", "10")
    spent = budget("10", "10")

    assert (below.used_ratio, below.remaining_usd) == (Decimal("0.5"), Decimal(5))
    assert (below.warning_reached, below.exhausted) == (False, False)
    assert (at_warning.warning_reached, at_warning.exhausted) == (True, False)
    assert (spent.exhausted, spent.remaining_usd) == (True, Decimal(0))
    assert budget("12", "10").remaining_usd == Decimal(0)


def test_no_limit_never_warns_nor_stops_and_a_zero_limit_stops_everything() -> None:
    unlimited = budget("1000", None)
    switched_off = budget("0", "0")

    assert (unlimited.used_ratio, unlimited.remaining_usd) == (None, None)
    assert (unlimited.warning_reached, unlimited.exhausted) == (False, False)
    assert (switched_off.used_ratio, switched_off.exhausted) == (Decimal(1), True)


def test_months_start_on_the_first_at_midnight_utc() -> None:
    new_year_in_moscow = datetime(2027, 1, 1, 1, 30, tzinfo=ZoneInfo("Europe/Moscow"))

    assert month_start(NOW) == datetime(2026, 12, 1, tzinfo=UTC)
    # Still December in UTC.
    assert month_start(new_year_in_moscow) == datetime(2026, 12, 1, tzinfo=UTC)
