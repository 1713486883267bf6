"""What a caller asks the gateway for, and what it gets back."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from typing import Any

from agent_platform.llm.tools import ToolCall, ToolDefinition


@dataclass(frozen=True)
class CallOwner:
    """Whose budget pays for a call, and what its record names."""

    organization_id: uuid.UUID
    agent_id: uuid.UUID | None
    conversation_id: uuid.UUID | None = None


@dataclass(frozen=True)
class ChatRequest:
    owner: CallOwner
    model: str
    messages: Sequence[Mapping[str, Any]]
    # Tried in order when `model` stays unavailable after its retries.
    fallback_models: Sequence[str] = ()
    temperature: float | None = None
    max_tokens: int | None = None
    tools: Sequence[ToolDefinition] = ()

    @property
    def models(self) -> tuple[str, ...]:
        """Every model to try, in order, each once (a fallback equal to the model is no help)."""
        return tuple(dict.fromkeys((self.model, *self.fallback_models)))


class CostSource(StrEnum):
    PROVIDER = "provider"  # the provider's own figure (OpenRouter's usage.cost)
    PRICE_TABLE = "price_table"  # estimated from tokens and llm/prices.toml (or LLM_PRICES)


@dataclass(frozen=True)
class Usage:
    tokens_in: int | None
    tokens_out: int | None
    # None when neither the provider nor the price table knows: never a made-up figure.
    cost_usd: Decimal | None
    cost_source: CostSource | None


@dataclass(frozen=True)
class ChatResult:
    text: str
    tool_calls: tuple[ToolCall, ...]
    # The model that answered, by the name it was asked for: the requested one or a fallback.
    model: str
    usage: Usage
    # The whole call as the caller waited for it, retries and fallbacks included.
    latency_ms: int
    finish_reason: str | None
