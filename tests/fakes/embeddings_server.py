"""A fake OpenAI-compatible embeddings API: `POST /v1/embeddings`.

Its vectors count a text's character trigrams (hashed into 1536 dimensions, normalised), so
texts that share spelling are near each other: a misspelt word still lands by the passage it
meant, which full-text search cannot find. No model, deterministic, instant.
`app.state.fake.fail_status` makes it answer that HTTP status instead.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

DIMENSIONS = 1536


@dataclass
class FakeEmbeddingsState:
    fail_status: int | None = None
    texts_embedded: int = 0


def trigram_vector(text: str, dimensions: int = DIMENSIONS) -> list[float]:
    vector = [0.0] * dimensions
    for word in re.findall(r"\w+", text.lower()):
        padded = f" {word} "
        for start in range(len(padded) - 2):
            digest = hashlib.blake2b(padded[start : start + 3].encode(), digest_size=8).digest()
            vector[int.from_bytes(digest, "big") % dimensions] += 1.0
    norm = math.sqrt(sum(value * value for value in vector))
    if norm == 0:  # no words: any fixed unit vector (a zero vector has no cosine distance)
        vector[0], norm = 1.0, 1.0
    return [value / norm for value in vector]


def create_fake_embeddings_app() -> FastAPI:
    fake = FakeEmbeddingsState()
    app = FastAPI(title="Fake embeddings API")
    app.state.fake = fake

    @app.post("/v1/embeddings")
    async def embeddings(body: dict[str, Any]) -> JSONResponse:
        if fake.fail_status is not None:
            error = {"message": "failure injected", "type": "server_error"}
            return JSONResponse({"error": error}, status_code=fake.fail_status)
        inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
        fake.texts_embedded += len(inputs)
        data = [
            {"object": "embedding", "index": index, "embedding": trigram_vector(text)}
            for index, text in enumerate(inputs)
        ]
        usage = {"prompt_tokens": 0, "total_tokens": 0}
        return JSONResponse(
            {"object": "list", "data": data, "model": body["model"], "usage": usage}
        )

    return app
