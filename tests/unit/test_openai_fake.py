"""The fake OpenAI server speaks well enough for the real `openai` SDK, and is steerable."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator

import httpx
import openai
import pytest
from fastapi import FastAPI

from tests.fakes.openai_server import DEFAULT_REPLY, MODEL_ID, create_fake_openai_app
from tests.support.servers import serve_app

MESSAGES: list[openai.types.chat.ChatCompletionMessageParam] = [
    {"role": "system", "content": "You are a sales assistant."},
    {"role": "user", "content": "How much is it?"},
]


@pytest.fixture(scope="module")
def fake_app() -> FastAPI:
    return create_fake_openai_app()


@pytest.fixture(scope="module")
def fake_url(fake_app: FastAPI) -> Iterator[str]:
    with serve_app(fake_app) as base_url:
        yield base_url


@pytest.fixture
async def control(fake_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """Steers the fake, reset first so each test sees only its own settings and requests."""
    async with httpx.AsyncClient(base_url=fake_url) as http:
        config = {
            "reply": DEFAULT_REPLY,
            "tool_calls": [],
            "cost": None,
            "delay_seconds": 0,
            "fail_next": 0,
            "fail_always": False,
            "fail_status": 500,
            "retry_after": None,
            "models": {},
        }
        (await http.post("/_fake/config", json=config)).raise_for_status()
        (await http.delete("/_fake/requests")).raise_for_status()
        yield http


@pytest.fixture
async def llm(fake_url: str, control: httpx.AsyncClient) -> AsyncIterator[openai.AsyncOpenAI]:
    # No SDK retries: a test that injects a failure wants to see it.
    async with openai.AsyncOpenAI(
        base_url=f"{fake_url}/v1", api_key="test-key", max_retries=0
    ) as client:
        yield client


async def test_completion_returns_the_reply_with_usage(llm: openai.AsyncOpenAI) -> None:
    completion = await llm.chat.completions.create(model="some/model", messages=MESSAGES)

    assert completion.model == "some/model"
    assert completion.choices[0].message.content == DEFAULT_REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == len(DEFAULT_REPLY.split())
    assert completion.usage.total_tokens == (
        completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


async def test_stream_yields_the_reply_in_pieces_then_usage(llm: openai.AsyncOpenAI) -> None:
    stream = await llm.chat.completions.create(
        model="some/model",
        messages=MESSAGES,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]

    content = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len(content) > 2
    assert "".join(content) == DEFAULT_REPLY
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len(DEFAULT_REPLY.split())


async def test_every_request_is_recorded(
    llm: openai.AsyncOpenAI, fake_app: FastAPI, control: httpx.AsyncClient
) -> None:
    await llm.chat.completions.create(model="some/model", messages=MESSAGES, temperature=0.2)

    [recorded] = fake_app.state.fake.requests
    assert recorded.path == "/v1/chat/completions"
    assert recorded.headers["authorization"] == "Bearer test-key"
    assert recorded.body["messages"] == MESSAGES
    assert recorded.body["temperature"] == 0.2
    over_http = (await control.get("/_fake/requests")).json()
    assert [(r["method"], r["body"]["model"]) for r in over_http] == [("POST", "some/model")]


async def test_fail_next_fails_that_many_calls_then_recovers(
    llm: openai.AsyncOpenAI, control: httpx.AsyncClient
) -> None:
    await control.post("/_fake/config", json={"fail_next": 2, "fail_status": 503})

    for _ in range(2):
        with pytest.raises(openai.InternalServerError) as raised:
            await llm.chat.completions.create(model="some/model", messages=MESSAGES)
        assert raised.value.status_code == 503

    completion = await llm.chat.completions.create(model="some/model", messages=MESSAGES)
    assert completion.choices[0].message.content == DEFAULT_REPLY


async def test_reply_is_configurable_at_runtime(
    llm: openai.AsyncOpenAI, control: httpx.AsyncClient
) -> None:
    await control.post("/_fake/config", json={"reply": "Our price is 100 USD."})

    completion = await llm.chat.completions.create(model="some/model", messages=MESSAGES)

    assert completion.choices[0].message.content == "Our price is 100 USD."


async def test_delay_makes_a_short_client_timeout_expire(
    llm: openai.AsyncOpenAI, control: httpx.AsyncClient
) -> None:
    await control.post("/_fake/config", json={"delay_seconds": 5})

    with pytest.raises(openai.APITimeoutError):
        await llm.with_options(timeout=0.2).chat.completions.create(
            model="some/model", messages=MESSAGES
        )


async def test_models_lists_the_fake_model(llm: openai.AsyncOpenAI) -> None:
    models = [model.id async for model in llm.models.list()]

    assert models == [MODEL_ID]


async def test_a_request_without_messages_is_a_400(llm: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        await llm.chat.completions.create(model="some/model", messages=[])


TASK_TOOL: openai.types.chat.ChatCompletionToolParam = {
    "type": "function",
    "function": {"name": "create_task", "parameters": {"type": "object", "properties": {}}},
}


async def test_scripted_tool_calls_come_back_instead_of_text(
    llm: openai.AsyncOpenAI, control: httpx.AsyncClient
) -> None:
    arguments = '{"text": "Call the customer back", "due_in_hours": 24}'
    await control.post(
        "/_fake/config", json={"tool_calls": [{"name": "create_task", "arguments": arguments}]}
    )

    completion = await llm.chat.completions.create(
        model="some/model", messages=MESSAGES, tools=[TASK_TOOL]
    )

    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content is None
    [call] = choice.message.tool_calls or []
    assert call.type == "function"
    assert (call.function.name, call.function.arguments) == ("create_task", arguments)


async def test_streamed_tool_calls_arrive_in_pieces_that_join_up(
    llm: openai.AsyncOpenAI, control: httpx.AsyncClient
) -> None:
    arguments = '{"text": "Call the customer back", "due_in_hours": 24}'
    await control.post(
        "/_fake/config", json={"tool_calls": [{"name": "create_task", "arguments": arguments}]}
    )

    stream = await llm.chat.completions.create(
        model="some/model", messages=MESSAGES, tools=[TASK_TOOL], stream=True
    )
    deltas = [
        call
        async for chunk in stream
        for call in (chunk.choices[0].delta.tool_calls or [] if chunk.choices else [])
    ]

    assert len(deltas) > 2
    assert deltas[0].id
    assert deltas[0].function is not None
    assert deltas[0].function.name == "create_task"
    joined = "".join((delta.function.arguments or "") for delta in deltas if delta.function)
    assert json.loads(joined) == json.loads(arguments)


async def test_usage_carries_the_scripted_cost_like_openrouter(
    llm: openai.AsyncOpenAI, control: httpx.AsyncClient
) -> None:
    without_cost = await llm.chat.completions.create(model="some/model", messages=MESSAGES)
    await control.post("/_fake/config", json={"cost": 0.0042})

    with_cost = await llm.chat.completions.create(model="some/model", messages=MESSAGES)

    assert without_cost.usage is not None
    assert "cost" not in (without_cost.usage.model_extra or {})
    assert with_cost.usage is not None
    assert (with_cost.usage.model_extra or {})["cost"] == 0.0042


async def test_models_named_in_the_config_behave_on_their_own(
    llm: openai.AsyncOpenAI, control: httpx.AsyncClient
) -> None:
    await control.post(
        "/_fake/config",
        json={
            "models": {
                "broken/model": {"fail_always": True, "fail_status": 500},
                "busy/model": {"fail_next": 1, "fail_status": 429, "retry_after": "7"},
            }
        },
    )

    for _ in range(2):
        with pytest.raises(openai.InternalServerError):
            await llm.chat.completions.create(model="broken/model", messages=MESSAGES)
    with pytest.raises(openai.RateLimitError) as limited:
        await llm.chat.completions.create(model="busy/model", messages=MESSAGES)
    assert limited.value.response.headers["retry-after"] == "7"
    recovered = await llm.chat.completions.create(model="busy/model", messages=MESSAGES)
    other = await llm.chat.completions.create(model="some/model", messages=MESSAGES)

    assert recovered.choices[0].message.content == DEFAULT_REPLY
    assert other.choices[0].message.content == DEFAULT_REPLY


async def test_the_config_answers_with_every_behaviour(control: httpx.AsyncClient) -> None:
    answer = await control.post(
        "/_fake/config", json={"reply": "Hi", "models": {"slow/model": {"delay_seconds": 3}}}
    )

    config = answer.json()
    assert config["reply"] == "Hi"
    assert config["models"]["slow/model"]["delay_seconds"] == 3
    assert config["models"]["slow/model"]["reply"] == "Hi"


async def test_an_unknown_config_field_is_refused(control: httpx.AsyncClient) -> None:
    answer = await control.post("/_fake/config", json={"models": {"m": {"fail_nxt": 1}}})

    assert answer.status_code == 422
