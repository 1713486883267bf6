"""The call to the language model: any OpenAI-compatible endpoint through the `openai` SDK."""

from __future__ import annotations

import time
from dataclasses import dataclass

from openai import AsyncOpenAI
from openai.types.chat import ChatCompletion

from agent_platform.config import Settings


@dataclass(frozen=True)
class LlmReply:
    text: str
    model: str
    tokens_in: int | None
    tokens_out: int | None
    latency_ms: int


def create_llm_client(settings: Settings) -> AsyncOpenAI | None:
    """One client per process (it pools connections), or None when no API key is set."""
    key = settings.openrouter_api_key
    if key is None or not key.get_secret_value():
        return None
    return AsyncOpenAI(
        api_key=key.get_secret_value(),
        base_url=settings.llm_base_url,
        timeout=settings.llm_timeout_seconds,
        # Retries belong to the job (with backoff across attempts), not to each call.
        max_retries=0,
    )


async def complete(
    client: AsyncOpenAI, *, model: str, messages: list[dict[str, str]], temperature: float
) -> LlmReply:
    """One chat completion. Errors propagate: the job's retry policy decides what follows."""
    started = time.perf_counter()
    # The SDK's low-level post: `chat.completions.create` first walks every message through a
    # TypedDict transform that took about a fifth of the reply job's CPU (measured with py-spy),
    # and our messages are already plain JSON. Parsing, errors and auth stay the SDK's.
    completion = await client.post(
        "/chat/completions",
        body={"model": model, "messages": messages, "temperature": temperature},
        cast_to=ChatCompletion,
    )
    latency_ms = int((time.perf_counter() - started) * 1000)
    usage = completion.usage
    return LlmReply(
        text=(completion.choices[0].message.content or "").strip(),
        model=completion.model or model,
        tokens_in=usage.prompt_tokens if usage else None,
        tokens_out=usage.completion_tokens if usage else None,
        latency_ms=latency_ms,
    )
