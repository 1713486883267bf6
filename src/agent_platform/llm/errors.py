"""Why a call to a language model gave no answer, as typed errors.

`kind` is what the call's record (`llm_calls.error_kind`) and the metrics say; `retryable`
tells a job's retry policy (kit.transient) whether the same work may succeed later.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum


class FailureKind(StrEnum):
    """A failed attempt worth retrying, then worth trying on the next model."""

    RATE_LIMITED = "rate_limited"
    SERVER_ERROR = "server_error"
    TIMEOUT = "timeout"
    CONNECTION = "connection_error"


@dataclass(frozen=True)
class AttemptFailure:
    model: str
    kind: FailureKind
    # What the provider asked us to wait (Retry-After), when it said.
    retry_after_seconds: float | None
    detail: str


class LlmError(Exception):
    kind: str = "error"
    retryable = False


class LlmUnavailableError(LlmError):
    """Every model failed, each after its retries."""

    retryable = True

    def __init__(self, failures: Sequence[AttemptFailure]) -> None:
        self.failures = tuple(failures)
        last = self.failures[-1]
        self.kind = last.kind.value
        tried = ", ".join(dict.fromkeys(failure.model for failure in self.failures))
        super().__init__(f"No model answered (tried {tried}); last: {last.kind}: {last.detail}")


class LlmRejectedError(LlmError):
    """The provider refused the request itself (a 4xx other than 429): asking again, or
    another model with the same key and messages, would not help."""

    kind = "rejected"

    def __init__(self, model: str, detail: str) -> None:
        self.model = model
        super().__init__(f"{model} refused the request: {detail}")


class LlmStreamInterruptedError(LlmError):
    """A stream broke after it began: its text already reached the caller, so it is not
    repeated on another attempt."""

    kind = "stream_interrupted"
    retryable = True


class MalformedToolCallError(LlmError):
    kind = "malformed_tool_call"

    def __init__(self, tool: str, arguments: str, problem: str) -> None:
        self.tool = tool
        self.arguments = arguments
        super().__init__(f"The model's call of {tool!r} is malformed: {problem}")


class BudgetExceededError(LlmError):
    """The organization's monthly budget is spent: no request was sent."""

    kind = "budget_exceeded"

    def __init__(self, spent_usd: Decimal, limit_usd: Decimal) -> None:
        self.spent_usd = spent_usd
        self.limit_usd = limit_usd
        super().__init__(f"The monthly LLM budget is spent: {spent_usd} of {limit_usd} USD")
