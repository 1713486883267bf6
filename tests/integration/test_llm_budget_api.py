"""The LLM budget and usage REST API: per organization, API key, unified errors on bad input."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from agent_platform.llm.errors import LlmUnavailableError
from agent_platform.llm.types import CallOwner, ChatRequest
from agent_platform.services import Services
from tests.support.kommo_oauth import create_organization

BUDGET = "/api/v1/llm/budget"
USAGE = "/api/v1/llm/usage"
NO_BUDGET = {
    "monthly_limit_usd": None,
    "warning_ratio": 0.8,
    "spent_usd": 0.0,
    "remaining_usd": None,
    "used_ratio": None,
    "warning_reached": False,
    "exhausted": False,
}


@pytest.fixture
async def api(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url) as client:
        yield client


@pytest.fixture
async def organization(services: Services) -> tuple[uuid.UUID, dict[str, str]]:
    organization_id, key = await create_organization(services)
    return organization_id, {"Authorization": f"Bearer {key}"}


def this_month() -> str:
    return datetime.now(UTC).strftime("%Y-%m")


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert set(body) == {"error", "request_id", "timestamp"}
    assert body["error"]["code"] == code
    return body


async def call_model(
    services: Services,
    organization_id: uuid.UUID,
    fake_llm_url: str,
    model: str,
    **fake_config: Any,
) -> None:
    """A call through the platform's own gateway, the fake answering as `fake_config` says."""
    async with httpx.AsyncClient() as fake:
        (await fake.post(f"{fake_llm_url}/_fake/config", json=fake_config)).raise_for_status()
    assert services.llm is not None
    await services.llm.complete(
        ChatRequest(
            owner=CallOwner(organization_id, agent_id=None),
            model=model,
            messages=[{"role": "user", "content": "How much is it?"}],
        )
    )


async def test_without_a_budget_nothing_is_limited(
    api: httpx.AsyncClient, organization: tuple[uuid.UUID, dict[str, str]]
) -> None:
    _, headers = organization

    response = await api.get(BUDGET, headers=headers)

    assert response.status_code == 200, response.text
    assert response.json() == {"month": this_month(), **NO_BUDGET}


async def test_a_budget_is_set_and_shows_this_months_spend(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    services: Services,
    fake_llm_url: str,
) -> None:
    organization_id, headers = organization
    await call_model(services, organization_id, fake_llm_url, "test/model", cost=2.5)

    put = await api.put(
        BUDGET, json={"monthly_limit_usd": 10, "warning_ratio": "0.5"}, headers=headers
    )
    got = await api.get(BUDGET, headers=headers)

    assert put.status_code == 200, put.text
    assert put.json() == got.json()
    assert got.json() == {
        "month": this_month(),
        "monthly_limit_usd": 10.0,
        "warning_ratio": 0.5,
        "spent_usd": 2.5,
        "remaining_usd": 7.5,
        "used_ratio": 0.25,
        "warning_reached": False,
        "exhausted": False,
    }


async def test_a_budget_can_be_lifted_again(
    api: httpx.AsyncClient, organization: tuple[uuid.UUID, dict[str, str]]
) -> None:
    _, headers = organization
    await api.put(BUDGET, json={"monthly_limit_usd": 0}, headers=headers)

    lifted = await api.put(BUDGET, json={"monthly_limit_usd": None}, headers=headers)

    assert lifted.json() == {"month": this_month(), **NO_BUDGET}


@pytest.mark.parametrize(
    "body",
    [
        {"monthly_limit_usd": -1},
        {"monthly_limit_usd": "12.345"},
        {"monthly_limit_usd": "ten dollars"},
        {"monthly_limit_usd": True},
        {"monthly_limit_usd": [10]},
        {"monthly_limit_usd": 10_000_000_000},
        {"monthly_limit_usd": 10, "warning_ratio": 0},
        {"monthly_limit_usd": 10, "warning_ratio": 1.5},
        {"monthly_limit_usd": 10, "warning_ratio": "0.755"},
        {"monthly_limit_usd": 10, "hard_stop": False},
        {"warning_ratio": 0.5},
        [],
    ],
    ids=[
        "negative",
        "fractions-of-a-cent",
        "not-a-number",
        "boolean",
        "list",
        "too-large",
        "zero-warning",
        "warning-over-one",
        "warning-too-precise",
        "unknown-field",
        "limit-missing",
        "not-an-object",
    ],
)
async def test_a_bad_budget_is_a_422_and_changes_nothing(
    api: httpx.AsyncClient, organization: tuple[uuid.UUID, dict[str, str]], body: Any
) -> None:
    _, headers = organization
    await api.put(BUDGET, json={"monthly_limit_usd": 25, "warning_ratio": 0.9}, headers=headers)

    response = await api.put(BUDGET, json=body, headers=headers)

    assert_error(response, 422, "validation_error")
    unchanged = (await api.get(BUDGET, headers=headers)).json()
    assert (unchanged["monthly_limit_usd"], unchanged["warning_ratio"]) == (25.0, 0.9)


async def test_a_body_that_is_not_json_is_a_422(
    api: httpx.AsyncClient, organization: tuple[uuid.UUID, dict[str, str]]
) -> None:
    _, headers = organization

    response = await api.put(
        BUDGET, content=b"limit=10", headers=headers | {"content-type": "application/json"}
    )

    assert_error(response, 422, "validation_error")


@pytest.mark.parametrize(("method", "path"), [("GET", BUDGET), ("PUT", BUDGET), ("GET", USAGE)])
async def test_without_an_api_key_it_is_a_401(
    api: httpx.AsyncClient, method: str, path: str
) -> None:
    response = await api.request(method, path, json={"monthly_limit_usd": 1})

    assert_error(response, 401, "unauthorized")


async def test_usage_sums_this_months_calls_by_model(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    services: Services,
    fake_llm_url: str,
) -> None:
    organization_id, headers = organization
    await api.put(BUDGET, json={"monthly_limit_usd": 1}, headers=headers)
    await call_model(services, organization_id, fake_llm_url, "a/model", cost=0.25)
    await call_model(services, organization_id, fake_llm_url, "a/model", cost=0.125)
    await call_model(services, organization_id, fake_llm_url, "unpriced/model", cost=None)
    with pytest.raises(LlmUnavailableError):
        await call_model(services, organization_id, fake_llm_url, "a/model", fail_always=True)

    response = await api.get(USAGE, headers=headers)

    assert response.status_code == 200, response.text
    usage = response.json()
    # The fake counts a word as a token: "How much is it?" is 4.
    a_model, unpriced = usage["by_model"]
    assert (a_model["model"], a_model["calls"], a_model["failed_calls"]) == ("a/model", 3, 1)
    assert a_model["cost_usd"] == 0.375
    assert a_model["tokens_in"] == 2 * 4
    assert (unpriced["model"], unpriced["calls_of_unknown_cost"]) == ("unpriced/model", 1)
    assert unpriced["cost_usd"] == 0.0
    assert (usage["month"], usage["calls"], usage["failed_calls"]) == (this_month(), 4, 1)
    assert (usage["cost_usd"], usage["calls_of_unknown_cost"]) == (0.375, 1)
    assert usage["tokens_in"] == 3 * 4
    assert usage["tokens_out"] == a_model["tokens_out"] + unpriced["tokens_out"]
    assert usage["budget"]["remaining_usd"] == 0.625
    assert Decimal(str(usage["budget"]["used_ratio"])) == Decimal("0.375")


async def test_an_organization_sees_only_its_own_budget_and_usage(
    api: httpx.AsyncClient,
    organization: tuple[uuid.UUID, dict[str, str]],
    services: Services,
    fake_llm_url: str,
) -> None:
    organization_id, headers = organization
    _, other_key = await create_organization(services, name="Beta")
    other = {"Authorization": f"Bearer {other_key}"}
    await api.put(BUDGET, json={"monthly_limit_usd": 5}, headers=headers)
    await call_model(services, organization_id, fake_llm_url, "a/model", cost=1)

    budget = (await api.get(BUDGET, headers=other)).json()
    usage = (await api.get(USAGE, headers=other)).json()

    assert budget == {"month": this_month(), **NO_BUDGET}
    assert (usage["calls"], usage["by_model"], usage["cost_usd"]) == (0, [], 0.0)
