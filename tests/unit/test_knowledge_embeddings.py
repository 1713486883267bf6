"""The embeddings client: vectors in the order of the texts, batched, and a clear 502 for
anything but vectors of the stored size. The provider is answered by respx."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from agent_platform.knowledge.embeddings import BATCH_SIZE, Embedder, EmbeddingsUnavailableError
from agent_platform.knowledge.models import EMBEDDING_DIMENSIONS

URL = "https://embeddings.example/v1/embeddings"


@pytest.fixture
async def embedder() -> AsyncIterator[Embedder]:
    async with httpx.AsyncClient() as http:
        yield Embedder(http=http, url=URL, model="text-embedding-3-small", api_key="sk-test")


def answer(request: httpx.Request) -> httpx.Response:
    """Each text's vector holds its length, listed in reverse order (indexes say which)."""
    texts = json.loads(request.content)["input"]
    data = [
        {"index": index, "embedding": [float(len(text))] * EMBEDDING_DIMENSIONS}
        for index, text in reversed(list(enumerate(texts)))
    ]
    return httpx.Response(200, json={"data": data})


async def test_vectors_come_in_the_order_of_the_texts_in_batches(embedder: Embedder) -> None:
    texts = ["x" * (n % 7 + 1) for n in range(BATCH_SIZE + 3)]
    with respx.mock:
        route = respx.post(URL).mock(side_effect=answer)
        vectors = await embedder.embed(texts)
    assert [vector[0] for vector in vectors] == [float(len(text)) for text in texts]
    assert route.call_count == 2
    sent = route.calls[0].request
    assert sent.headers["authorization"] == "Bearer sk-test"
    body = json.loads(sent.content)
    assert (body["model"], body["encoding_format"]) == ("text-embedding-3-small", "float")


@pytest.mark.parametrize(
    ("response", "message"),
    [
        (httpx.Response(429, json={"error": "slow down"}), "answered HTTP 429"),
        (httpx.Response(200, json={"nothing": []}), "did not answer with embeddings"),
        (httpx.Response(200, text="<html>"), "did not answer with embeddings"),
        (httpx.Response(200, json={"data": []}), "returned 0 vectors for 1 texts"),
        (
            httpx.Response(200, json={"data": [{"index": 0, "embedding": [0.1] * 768}]}),
            "does not make 1536-dimensional vectors",
        ),
    ],
)
async def test_anything_but_vectors_of_the_stored_size_is_a_502(
    embedder: Embedder, response: httpx.Response, message: str
) -> None:
    with respx.mock:
        respx.post(URL).mock(return_value=response)
        with pytest.raises(EmbeddingsUnavailableError, match=message) as raised:
            await embedder.embed(["hello"])
    assert raised.value.status_code == 502


async def test_an_unreachable_endpoint_is_a_502(embedder: Embedder) -> None:
    with respx.mock:
        respx.post(URL).mock(side_effect=httpx.ConnectError("refused"))
        with pytest.raises(EmbeddingsUnavailableError, match="could not be reached"):
            await embedder.embed(["hello"])
