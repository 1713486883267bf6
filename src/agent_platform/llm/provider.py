"""One attempt at an OpenAI-compatible chat completion, plain or streamed, and its reading.

Requests go through the SDK's low-level `post`: `chat.completions.create` first walks every
message through a TypedDict transform that took about a fifth of the reply job's CPU
(measured with py-spy), and our messages are already plain JSON. Parsing, errors and auth
stay the SDK's.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from openai import AsyncOpenAI, AsyncStream
from openai.types import CompletionUsage
from openai.types.chat import (
    ChatCompletion,
    ChatCompletionChunk,
    ChatCompletionMessageFunctionToolCall,
)

from agent_platform.llm.tools import RawToolCall
from agent_platform.llm.types import ChatRequest

COMPLETIONS_PATH = "/chat/completions"


@dataclass(frozen=True)
class ProviderReply:
    """What the provider answered, before its tool calls are parsed and its cost priced."""

    text: str
    tool_calls: tuple[RawToolCall, ...]
    tokens_in: int | None
    tokens_out: int | None
    reported_cost_usd: Decimal | None
    finish_reason: str | None


async def complete_once(client: AsyncOpenAI, request: ChatRequest, model: str) -> ProviderReply:
    completion = await client.post(
        COMPLETIONS_PATH, body=_body(request, model, stream=False), cast_to=ChatCompletion
    )
    choice = completion.choices[0]
    raw_calls = tuple(
        RawToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments)
        for call in choice.message.tool_calls or ()
        # Only function tools are ever offered; other kinds cannot be answered.
        if isinstance(call, ChatCompletionMessageFunctionToolCall)
    )
    return _reply(choice.message.content or "", raw_calls, completion.usage, choice.finish_reason)


async def open_stream(
    client: AsyncOpenAI, request: ChatRequest, model: str
) -> AsyncStream[ChatCompletionChunk]:
    """The stream, once the provider has accepted the request (its status line arrived)."""
    return await client.post(
        COMPLETIONS_PATH,
        body=_body(request, model, stream=True),
        cast_to=ChatCompletion,
        stream=True,
        stream_cls=AsyncStream[ChatCompletionChunk],
    )


class StreamAssembler:
    """Puts a stream's chunks back together into the reply they make."""

    def __init__(self) -> None:
        self._text: list[str] = []
        # Tool calls arrive in pieces keyed by their index: id and name first, arguments after.
        self._calls: dict[int, dict[str, str]] = {}
        self._usage: CompletionUsage | None = None
        self._finish_reason: str | None = None

    def add(self, chunk: ChatCompletionChunk) -> str:
        """Takes a chunk in; returns the text it adds ("" when none)."""
        if chunk.usage is not None:
            self._usage = chunk.usage
        if not chunk.choices:
            return ""
        choice = chunk.choices[0]
        self._finish_reason = choice.finish_reason or self._finish_reason
        for delta in choice.delta.tool_calls or ():
            call = self._calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
            call["id"] = delta.id or call["id"]
            if delta.function is not None:
                call["name"] = delta.function.name or call["name"]
                call["arguments"] += delta.function.arguments or ""
        text = choice.delta.content or ""
        self._text.append(text)
        return text

    def reply(self) -> ProviderReply:
        calls = tuple(RawToolCall(**self._calls[index]) for index in sorted(self._calls))
        return _reply("".join(self._text), calls, self._usage, self._finish_reason)


def _body(request: ChatRequest, model: str, *, stream: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": model, "messages": list(request.messages)}
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.max_tokens is not None:
        body["max_tokens"] = request.max_tokens
    if request.tools:
        body["tools"] = [tool.as_openai() for tool in request.tools]
    if stream:
        # Without it OpenAI sends no usage at all in a stream (OpenRouter always does).
        body |= {"stream": True, "stream_options": {"include_usage": True}}
    return body


def _reply(
    text: str,
    tool_calls: tuple[RawToolCall, ...],
    usage: CompletionUsage | None,
    finish_reason: str | None,
) -> ProviderReply:
    return ProviderReply(
        text=text,
        tool_calls=tool_calls,
        tokens_in=usage.prompt_tokens if usage else None,
        tokens_out=usage.completion_tokens if usage else None,
        reported_cost_usd=_reported_cost(usage),
        finish_reason=finish_reason,
    )


def _reported_cost(usage: CompletionUsage | None) -> Decimal | None:
    """OpenRouter's `usage.cost` (USD); other providers report none."""
    cost = (usage.model_extra or {}).get("cost") if usage is not None else None
    if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
        return Decimal(str(cost))
    return None
