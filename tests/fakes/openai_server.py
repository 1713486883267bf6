"""A fake OpenAI-compatible server for tests and benchmarks.

It answers `POST /v1/chat/completions` (plain and streamed) and `GET /v1/models` in the real
API's shapes, so the platform's own `openai` SDK client talks to it unchanged. It records every
request it receives, so a test can assert what the platform sent, and `POST /_fake/config`
scripts its behaviour while it runs, for every model or for one model by name: the reply or
tool calls, the cost reported in `usage` (as OpenRouter does), a delay before answering, and
failures (the next N calls, or every call) with a status and a `Retry-After` header.

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
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_REPLY = "Hello! I am the fake LLM."
MODEL_ID = "fake-model"


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON, or the raw text when it was not JSON


class ScriptedToolCall(BaseModel):
    name: str
    # Raw, as a model writes it: a test may script arguments that are not valid JSON.
    arguments: str = "{}"


class Behaviour(BaseModel):
    """How the fake answers a chat completion: for every model, or for one model by name."""

    reply: str
    # Instead of text, these tool calls (finish_reason "tool_calls").
    tool_calls: list[ScriptedToolCall] = []
    # OpenRouter's `usage.cost` in USD; None leaves the field out, as OpenAI does.
    cost: float | None = None
    # Before answering or failing: a slow failure is what timeouts and retries meet in practice.
    delay_seconds: float = Field(default=0.0, ge=0)
    # The next `fail_next` calls (or every call, with `fail_always`) answer `fail_status`.
    fail_next: int = Field(default=0, ge=0)
    fail_always: bool = False
    fail_status: int = Field(default=500, ge=400, le=599)
    # Sent with failures: seconds, or an HTTP date.
    retry_after: str | None = None

    def takes_a_failure(self) -> bool:
        if self.fail_always:
            return True
        if self.fail_next:
            self.fail_next -= 1
            return True
        return False


class BehaviourUpdate(BaseModel):
    """A partial `Behaviour`: fields left out keep their value, an explicit null clears one."""

    model_config = ConfigDict(extra="forbid")

    reply: str | None = None
    tool_calls: list[ScriptedToolCall] | None = None
    cost: float | None = None
    delay_seconds: float | None = Field(default=None, ge=0)
    fail_next: int | None = Field(default=None, ge=0)
    fail_always: bool | None = None
    fail_status: int | None = Field(default=None, ge=400, le=599)
    retry_after: str | None = None

    def applied_to(self, behaviour: Behaviour) -> Behaviour:
        # `models` (FakeConfig's per-model table) is not a field of a behaviour.
        given = self.model_dump(exclude_unset=True, exclude={"models"})
        return Behaviour.model_validate(behaviour.model_dump() | given)


class FakeConfig(BehaviourUpdate):
    """The body of `POST /_fake/config`: an update of the behaviour of every model and, when
    `models` is given, the whole table of per-model behaviours (`{}` removes them). A model's
    behaviour starts from the default one as it is after this update."""

    models: dict[str, BehaviourUpdate] | None = None


@dataclass(slots=True)
class FakeOpenAIState:
    """What the fake answers, and what it has been sent. Tests read it as `app.state.fake`."""

    default: Behaviour
    models: dict[str, Behaviour] = field(default_factory=dict)
    requests: list[RecordedRequest] = field(default_factory=list)

    def behaviour_for(self, model: str | None) -> Behaviour:
        return self.models.get(model, self.default) if model is not None else self.default

    def configure(self, config: FakeConfig) -> None:
        self.default = config.applied_to(self.default)
        if config.models is not None:
            self.models = {
                name: update.applied_to(self.default) for name, update in config.models.items()
            }

    def as_json(self) -> dict[str, Any]:
        models = {name: behaviour.model_dump() for name, behaviour in self.models.items()}
        return self.default.model_dump() | {"models": models}


class ChatRequest(BaseModel):
    """The part of a chat completion request the fake looks at; the rest is only recorded."""

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None


def create_fake_openai_app(reply: str = DEFAULT_REPLY, delay_seconds: float = 0.0) -> FastAPI:
    fake = FakeOpenAIState(default=Behaviour(reply=reply, delay_seconds=delay_seconds))
    app = FastAPI(title="Fake OpenAI-compatible API")
    app.state.fake = fake

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        body = await _record(request, fake)
        model = body.get("model") if isinstance(body, dict) else None
        behaviour = fake.behaviour_for(model if isinstance(model, str) else None)
        if behaviour.delay_seconds:
            await asyncio.sleep(behaviour.delay_seconds)
        if behaviour.takes_a_failure():
            return _error(
                behaviour.fail_status,
                "failure injected through POST /_fake/config",
                retry_after=behaviour.retry_after,
            )
        try:
            chat = ChatRequest.model_validate(body)
        except ValidationError as exc:
            return _error(400, str(exc))
        completion = _Completion(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=chat.model,
            behaviour=behaviour,
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
    async def configure(config: FakeConfig) -> dict[str, Any]:
        fake.configure(config)
        return fake.as_json()

    return app


@dataclass(frozen=True, slots=True)
class _Completion:
    id: str
    created: int
    model: str
    behaviour: Behaviour
    prompt_tokens: int

    @property
    def tool_calls(self) -> list[dict[str, Any]]:
        return [
            {
                "id": f"call_{self.id[-8:]}_{index}",
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments},
            }
            for index, call in enumerate(self.behaviour.tool_calls)
        ]

    @property
    def content(self) -> str | None:
        return None if self.behaviour.tool_calls else self.behaviour.reply

    @property
    def finish_reason(self) -> str:
        return "tool_calls" if self.behaviour.tool_calls else "stop"

    def usage(self) -> dict[str, Any]:
        generated = [self.content] + [call.arguments for call in self.behaviour.tool_calls]
        completion_tokens = sum(_count_tokens(text) for text in generated)
        usage: dict[str, Any] = {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        }
        if self.behaviour.cost is not None:
            usage["cost"] = self.behaviour.cost
        return usage

    def as_json(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.content, "refusal": None}
        if self.behaviour.tool_calls:
            message["tool_calls"] = self.tool_calls
        choice = {
            "index": 0,
            "message": message,
            "logprobs": None,
            "finish_reason": self.finish_reason,
        }
        return {**self.envelope("chat.completion"), "choices": [choice], "usage": self.usage()}

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
    """The reply as OpenAI streams it: a role chunk, content or tool-call pieces, a finish
    chunk, the usage chunk when asked for, then [DONE]."""
    events = [completion.chunk({"role": "assistant", "content": ""})]
    # Word pieces with their leading whitespace, like real tokens; joined they give the reply.
    events += [completion.chunk({"content": piece}) for piece in _pieces(completion.content)]
    events += [completion.chunk({"tool_calls": [delta]}) for delta in _tool_call_deltas(completion)]
    events.append(completion.chunk({}, finish_reason=completion.finish_reason))
    if include_usage:  # as with OpenAI, usage comes only when asked for, in a last empty chunk
        usage_chunk = {"choices": [], "usage": completion.usage()}
        events.append({**completion.envelope("chat.completion.chunk"), **usage_chunk})
    for event in events:
        yield f"data: {json.dumps(event)}\n\n"
    yield "data: [DONE]\n\n"


def _tool_call_deltas(completion: _Completion) -> list[dict[str, Any]]:
    """Each call as OpenAI streams it: id and name first, then its arguments in pieces."""
    deltas: list[dict[str, Any]] = []
    for index, call in enumerate(completion.tool_calls):
        function = call["function"]
        deltas.append(
            {
                "index": index,
                "id": call["id"],
                "type": "function",
                "function": {"name": function["name"], "arguments": ""},
            }
        )
        deltas += [
            {"index": index, "function": {"arguments": piece}}
            for piece in _pieces(function["arguments"])
        ]
    return deltas


def _pieces(text: str | None) -> list[str]:
    return re.findall(r"\s*\S+|\s+", text or "")


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


def _error(status: int, message: str, *, retry_after: str | None = None) -> Response:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    error = {"message": message, "type": kind, "param": None, "code": None}
    headers = {"Retry-After": retry_after} if retry_after is not None else None
    return JSONResponse({"error": error}, status_code=status, headers=headers)


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
