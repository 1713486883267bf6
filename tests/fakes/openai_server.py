"""A fake OpenAI-compatible server for tests and benchmarks.

It answers `POST /v1/chat/completions` (plain and streamed) and `GET /v1/models` in the real
API's shapes, so the platform's own `openai` SDK client talks to it unchanged. It records every
request it receives, so a test can assert what the platform sent, and `POST /_fake/config`
changes its reply, makes it slow or makes the next calls fail, while it runs.

Run it alone for a benchmark or a manual demo:

    python -m tests.fakes.openai_server --host 127.0.0.1 --port 8765
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field, ValidationError

DEFAULT_REPLY = "Hello! I am the fake LLM."
MODEL_ID = "fake-model"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON, or the raw text when it was not JSON


@dataclass(slots=True)
class FakeOpenAIState:
    """What the fake answers, and what it has been sent. Tests read it as `app.state.fake`."""

    reply: str
    delay_seconds: float
    # The next `fail_next` chat completions answer `fail_status` instead of a reply.
    fail_next: int = 0
    fail_status: int = 500
    requests: list[RecordedRequest] = field(default_factory=list)


class ChatRequest(BaseModel):
    """The part of a chat completion request the fake looks at; the rest is only recorded."""

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None


class FakeConfig(BaseModel):
    """A partial update of the fake's behaviour: fields left out keep their value."""

    reply: str | None = None
    delay_seconds: float | None = Field(default=None, ge=0)
    fail_next: int | None = Field(default=None, ge=0)
    fail_status: int | None = Field(default=None, ge=400, le=599)


def create_fake_openai_app(reply: str = DEFAULT_REPLY, delay_seconds: float = 0.0) -> FastAPI:
    fake = FakeOpenAIState(reply=reply, delay_seconds=delay_seconds)
    app = FastAPI(title="Fake OpenAI-compatible API")
    app.state.fake = fake

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body = await _record(request, fake)
        # Sleep before failing too: a slow failure is what timeouts and retries meet in practice.
        if fake.delay_seconds:
            await asyncio.sleep(fake.delay_seconds)
        if fake.fail_next:
            fake.fail_next -= 1
            return _error(fake.fail_status, "failure injected through POST /_fake/config")
        try:
            chat = ChatRequest.model_validate(body)
        except ValidationError as exc:
            return _error(400, str(exc))
        completion = _Completion(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=chat.model,
            reply=fake.reply,
            prompt_tokens=sum(_count_tokens(message.get("content")) for message in chat.messages),
        )
        if chat.stream:
            include_usage = bool((chat.stream_options or {}).get("include_usage"))
            return StreamingResponse(
                _sse(completion, include_usage=include_usage), media_type="text/event-stream"
            )
        return JSONResponse(completion.as_json())

    @app.get("/v1/models")
    async def list_models(request: Request) -> Response:
        await _record(request, fake)
        model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "fake"}
        return JSONResponse({"object": "list", "data": [model]})

    @app.get("/_fake/requests")
    async def recorded_requests() -> Response:
        return JSONResponse([dataclasses.asdict(recorded) for recorded in fake.requests])

    @app.delete("/_fake/requests")
    async def forget_requests() -> Response:
        fake.requests.clear()
        return Response(status_code=204)

    @app.post("/_fake/config")
    async def configure(config: FakeConfig) -> FakeConfig:
        for name, value in config.model_dump(exclude_none=True).items():
            setattr(fake, name, value)
        return FakeConfig(
            reply=fake.reply,
            delay_seconds=fake.delay_seconds,
            fail_next=fake.fail_next,
            fail_status=fake.fail_status,
        )

    return app


@dataclass(frozen=True, slots=True)
class _Completion:
    id: str
    created: int
    model: str
    reply: str
    prompt_tokens: int

    def usage(self) -> dict[str, int]:
        completion_tokens = _count_tokens(self.reply)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        }

    def as_json(self) -> dict[str, Any]:
        message = {"role": "assistant", "content": self.reply, "refusal": None}
        return {
            **self.envelope("chat.completion"),
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": "stop"}
            ],
            "usage": self.usage(),
        }

    def chunk(self, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        return {**self.envelope("chat.completion.chunk"), "choices": [choice]}

    def envelope(self, kind: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": kind,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": None,
        }


async def _sse(completion: _Completion, *, include_usage: bool) -> AsyncIterator[str]:
    """The reply as OpenAI streams it: a role chunk, content pieces, a finish chunk, [DONE]."""
    events = [completion.chunk({"role": "assistant", "content": ""})]
    # Word pieces with their leading whitespace, like real tokens; joined they give the reply.
    events += [completion.chunk({"content": piece}) for piece in _pieces(completion.reply)]
    events.append(completion.chunk({}, finish_reason="stop"))
    if include_usage:  # as with OpenAI, usage comes only when asked for, in a last empty chunk
        usage_chunk = {"choices": [], "usage": completion.usage()}
        events.append({**completion.envelope("chat.completion.chunk"), **usage_chunk})
    for event in events:
        yield f"data: {json.dumps(event)}\n\n"
    yield "data: [DONE]\n\n"


def _pieces(text: str) -> list[str]:
    return re.findall(r"\s*\S+|\s+", text)


def _count_tokens(content: object) -> int:
    # Words stand in for tokens: tests need stable, plausible figures, not a tokenizer.
    return len(content.split()) if isinstance(content, str) else 0


async def _record(request: Request, fake: FakeOpenAIState) -> Any:
    raw = await request.body()
    try:
        body = json.loads(raw) if raw else None
    except ValueError:
        body = raw.decode(errors="replace")
    fake.requests.append(
        RecordedRequest(request.method, request.url.path, dict(request.headers), body)
    )
    return body


def _error(status: int, message: str) -> Response:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    error = {"message": message, "type": kind, "param": None, "code": None}
    return JSONResponse({"error": error}, status_code=status)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Fake OpenAI-compatible API for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--reply", default=DEFAULT_REPLY)
    parser.add_argument("--delay-seconds", type=float, default=0.0)
    args = parser.parse_args(argv)
    app = create_fake_openai_app(reply=args.reply, delay_seconds=args.delay_seconds)
    uvicorn.run(app, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
