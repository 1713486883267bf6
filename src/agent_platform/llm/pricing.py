"""What a call cost: the provider's own figure, else an estimate from the price table."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from decimal import Decimal
from importlib import resources

from pydantic import BaseModel, ConfigDict, Field

from agent_platform.llm.types import CostSource, Usage

TOKENS_PER_PRICE_UNIT = Decimal(1_000_000)
# Costs are kept to a hundred-millionth of a dollar: a short call of a cheap model costs
# well under a millionth, and rounding each to zero would hide real spend.
COST_QUANTUM = Decimal("0.00000001")


class TokenPrices(BaseModel):
    """USD per million tokens."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    input: Decimal = Field(ge=0)
    output: Decimal = Field(ge=0)


class PriceTable:
    def __init__(self, prices: Mapping[str, TokenPrices]) -> None:
        self._prices = dict(prices)

    def usage(
        self,
        model: str,
        tokens_in: int | None,
        tokens_out: int | None,
        reported_cost_usd: Decimal | None,
    ) -> Usage:
        if reported_cost_usd is not None:
            return Usage(
                tokens_in, tokens_out, reported_cost_usd.quantize(COST_QUANTUM), CostSource.PROVIDER
            )
        estimate = self.estimate(model, tokens_in, tokens_out)
        if estimate is None:
            return Usage(tokens_in, tokens_out, None, None)
        return Usage(tokens_in, tokens_out, estimate.quantize(COST_QUANTUM), CostSource.PRICE_TABLE)

    def estimate(self, model: str, tokens_in: int | None, tokens_out: int | None) -> Decimal | None:
        prices = self._prices.get(model)
        if prices is None or tokens_in is None or tokens_out is None:
            return None
        return (prices.input * tokens_in + prices.output * tokens_out) / TOKENS_PER_PRICE_UNIT


def load_price_table(overrides: Mapping[str, TokenPrices]) -> PriceTable:
    """The packaged prices (llm/prices.toml), with `overrides` (LLM_PRICES) replacing or adding
    models."""
    packaged = resources.files("agent_platform.llm").joinpath("prices.toml").read_text()
    models = tomllib.loads(packaged, parse_float=Decimal)["models"]
    prices = {model: TokenPrices.model_validate(entry) for model, entry in models.items()}
    return PriceTable(prices | dict(overrides))
