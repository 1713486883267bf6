"""The one way the platform calls a language model.

A call: the organization's budget is checked (a spent budget refuses it before any request);
the model is asked, each failed attempt worth repeating (429, 5xx, timeout, connection) is
retried with backoff, then the next fallback model is tried; the answer's tool calls are
parsed; the call is recorded with its tokens and cost, and the metrics are counted.

The budget check and the record are short transactions of their own around the request, so no
transaction stays open while a model thinks.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from functools import partial
from typing import TypeVar

import openai
import structlog
from openai import AsyncOpenAI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agent_platform.config import Settings
from agent_platform.db.session import transaction
from agent_platform.llm import metrics, provider, repository
from agent_platform.llm.budget import budget_state, note_budget_state
from agent_platform.llm.errors import (
    AttemptFailure,
    BudgetExceededError,
    LlmError,
    LlmRejectedError,
    LlmStreamInterruptedError,
    LlmUnavailableError,
    MalformedToolCallError,
)
from agent_platform.llm.models import CallStatus, LlmCall
from agent_platform.llm.pricing import PriceTable, load_price_table
from agent_platform.llm.provider import ProviderReply, StreamAssembler
from agent_platform.llm.retry import RetryPolicy, attempt_failure
from agent_platform.llm.tools import parse_tool_calls
from agent_platform.llm.types import ChatRequest, ChatResult, Usage

log = structlog.get_logger("llm")

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

# The caller stopped reading a stream (a client went away): not an error anyone sees, but the
# provider bills what it generated, so the call is recorded with this kind.
ABANDONED = "abandoned"


class LlmGateway:
    def __init__(
        self,
        client: AsyncOpenAI,
        sessions: async_sessionmaker[AsyncSession],
        *,
        retry: RetryPolicy,
        prices: PriceTable,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._client = client
        self._sessions = sessions
        self._retry = retry
        self._prices = prices
        # Injectable so that tests see the waits without waiting.
        self._sleep = sleep

    async def complete(self, request: ChatRequest) -> ChatResult:
        call = await self._admit(request)
        try:
            model, reply = await self._first_answer(
                call, partial(provider.complete_once, self._client, request)
            )
        except LlmError as exc:
            await self._record(call.row(CallStatus.ERROR, error_kind=exc.kind))
            raise
        return await self._finish(call, model, reply)

    async def stream(self, request: ChatRequest) -> AsyncIterator[str | ChatResult]:
        """The answer's text in pieces as the model writes it, then the whole ChatResult.

        Only opening the stream is retried or moved to a fallback model: once text has
        reached the caller, another attempt would repeat it.
        """
        call = await self._admit(request)
        try:
            model, chunks = await self._first_answer(
                call, partial(provider.open_stream, self._client, request)
            )
        except LlmError as exc:
            await self._record(call.row(CallStatus.ERROR, error_kind=exc.kind))
            raise
        assembler = StreamAssembler()
        try:
            async for chunk in chunks:
                if text := assembler.add(chunk):
                    yield text
        except openai.APIError as exc:
            metrics.record_attempt(model, LlmStreamInterruptedError.kind, call.attempt_seconds())
            await self._record(
                call.row(CallStatus.ERROR, error_kind=LlmStreamInterruptedError.kind)
            )
            raise LlmStreamInterruptedError(f"{model}: {exc}") from exc
        except (GeneratorExit, asyncio.CancelledError):
            metrics.record_attempt(model, ABANDONED, call.attempt_seconds())
            # Shielded: the cancellation under way must not cancel its own record.
            await asyncio.shield(self._record(call.row(CallStatus.ERROR, error_kind=ABANDONED)))
            raise
        finally:
            await chunks.close()
        yield await self._finish(call, model, assembler.reply())

    async def close(self) -> None:
        await self._client.close()

    async def _admit(self, request: ChatRequest) -> _CallProgress:
        """The call's start, unless the organization's budget for the month is spent."""
        call = _CallProgress(request)
        async with transaction(self._sessions) as session:
            state = await budget_state(session, request.owner.organization_id, datetime.now(UTC))
            if state.exhausted:
                await repository.add_call(session, call.row(CallStatus.BUDGET_BLOCKED))
        if not state.exhausted:
            return call
        assert state.limit_usd is not None, "only a limit can be exhausted"
        metrics.record_budget_blocked(request.model)
        log.info("llm_call_refused_over_budget", spent_usd=str(state.spent_usd))
        raise BudgetExceededError(state.spent_usd, state.limit_usd)

    async def _first_answer(
        self, call: _CallProgress, attempt: Callable[[str], Awaitable[T]]
    ) -> tuple[str, T]:
        """The first model's answer, each model retried as the policy allows, in order."""
        failures: list[AttemptFailure] = []
        for model in call.request.models:
            if failures:
                log.warning("llm_fallback", model=model, after=failures[-1].model)
            for retries_done in itertools.count():
                call.begin_attempt(model)
                try:
                    return model, await attempt(model)
                except openai.APIError as exc:
                    failure = attempt_failure(exc, model)
                    if failure is None:
                        metrics.record_attempt(model, LlmRejectedError.kind, call.attempt_seconds())
                        raise LlmRejectedError(model, str(exc)) from exc
                    metrics.record_attempt(model, failure.kind.value, call.attempt_seconds())
                failures.append(failure)
                delay = self._retry.delay_before_retry(retries_done, failure)
                if delay is None:
                    break
                log.info("llm_retry", model=model, failure=failure.kind, delay_seconds=delay)
                await self._sleep(delay)
        raise LlmUnavailableError(failures)

    async def _finish(self, call: _CallProgress, model: str, reply: ProviderReply) -> ChatResult:
        """The answer priced, its tool calls parsed, recorded and counted."""
        usage = self._prices.usage(
            model, reply.tokens_in, reply.tokens_out, reply.reported_cost_usd
        )
        metrics.record_attempt(model, CallStatus.OK.value, call.attempt_seconds())
        metrics.record_usage(model, usage)
        try:
            tool_calls = parse_tool_calls(reply.tool_calls)
        except MalformedToolCallError as exc:
            # Not an answer, yet paid for: the record keeps its tokens and cost.
            await self._record(call.row(CallStatus.ERROR, usage=usage, error_kind=exc.kind))
            raise
        await self._record(call.row(CallStatus.OK, usage=usage))
        return ChatResult(
            text=reply.text,
            tool_calls=tool_calls,
            model=model,
            usage=usage,
            latency_ms=call.latency_ms(),
            finish_reason=reply.finish_reason,
        )

    async def _record(self, row: LlmCall) -> None:
        async with transaction(self._sessions) as session:
            await repository.add_call(session, row)
            # Only spending moves the budget: a call that cost nothing leaves it as it was.
            if row.cost_usd:
                state = await budget_state(session, row.organization_id, datetime.now(UTC))
                await note_budget_state(session, row.organization_id, state)


class _CallProgress:
    """One gateway call as it goes: when it began, which model it is on, and its record."""

    def __init__(self, request: ChatRequest) -> None:
        self.request = request
        self._started = time.perf_counter()
        self._attempt_started = self._started
        self._model: str | None = None

    def begin_attempt(self, model: str) -> None:
        self._model = model
        self._attempt_started = time.perf_counter()

    def attempt_seconds(self) -> float:
        return time.perf_counter() - self._attempt_started

    def latency_ms(self) -> int:
        return int((time.perf_counter() - self._started) * 1000)

    def row(
        self, status: CallStatus, *, usage: Usage | None = None, error_kind: str | None = None
    ) -> LlmCall:
        owner = self.request.owner
        return LlmCall(
            organization_id=owner.organization_id,
            agent_id=owner.agent_id,
            conversation_id=owner.conversation_id,
            model_requested=self.request.model,
            model_used=self._model,
            status=status.value,
            tokens_in=usage.tokens_in if usage else None,
            tokens_out=usage.tokens_out if usage else None,
            cost_usd=usage.cost_usd if usage else None,
            cost_source=usage.cost_source.value if usage and usage.cost_source else None,
            # A refused call never started: it has no latency to speak of.
            latency_ms=None if status is CallStatus.BUDGET_BLOCKED else self.latency_ms(),
            error_kind=error_kind,
        )


def create_llm_gateway(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    *,
    sleep: Sleep = asyncio.sleep,
) -> LlmGateway | None:
    """One gateway per process (its client pools connections), or None without an API key."""
    key = settings.openrouter_api_key
    if key is None or not key.get_secret_value():
        return None
    client = AsyncOpenAI(
        api_key=key.get_secret_value(),
        base_url=settings.llm_base_url,
        timeout=settings.llm_timeout_seconds,
        # The gateway retries, with its own policy and fallback models.
        max_retries=0,
    )
    retry = RetryPolicy(
        max_retries=settings.llm_max_retries,
        base_seconds=settings.llm_retry_base_seconds,
        max_seconds=settings.llm_retry_max_seconds,
    )
    prices = load_price_table(settings.llm_prices)
    return LlmGateway(client, sessions, retry=retry, prices=prices, sleep=sleep)
