"""Vectors for texts from an OpenAI-compatible `POST {EMBEDDINGS_BASE_URL}/embeddings`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from pydantic import BaseModel, ValidationError

from agent_platform.config import Settings
from agent_platform.kit.errors import AppError
from agent_platform.knowledge.models import EMBEDDING_DIMENSIONS

# Texts per request: well under every provider's limit on inputs and tokens per call.
BATCH_SIZE = 64


class EmbeddingsUnavailableError(AppError):
    status_code = 502
    code = "embeddings_unavailable"


class _Embedding(BaseModel):
    index: int
    embedding: list[float]


class _EmbeddingsResponse(BaseModel):
    data: list[_Embedding]


@dataclass(frozen=True)
class Embedder:
    http: httpx.AsyncClient
    url: str
    model: str
    api_key: str | None

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        """One vector per text, in order; EmbeddingsUnavailableError when the endpoint fails
        or answers something else than vectors of the stored size."""
        vectors: list[list[float]] = []
        for offset in range(0, len(texts), BATCH_SIZE):
            vectors.extend(await self._embed_batch(texts[offset : offset + BATCH_SIZE]))
        return vectors

    async def _embed_batch(self, texts: Sequence[str]) -> list[list[float]]:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        body = {"model": self.model, "input": list(texts), "encoding_format": "float"}
        try:
            response = await self.http.post(self.url, json=body, headers=headers)
            response.raise_for_status()
            parsed = _EmbeddingsResponse.model_validate_json(response.content)
        except httpx.HTTPStatusError as exc:
            raise EmbeddingsUnavailableError(
                f"The embeddings endpoint answered HTTP {exc.response.status_code}."
            ) from exc
        except httpx.HTTPError as exc:
            raise EmbeddingsUnavailableError(
                f"The embeddings endpoint could not be reached ({type(exc).__name__})."
            ) from exc
        except ValidationError as exc:
            raise EmbeddingsUnavailableError(
                "The embeddings endpoint did not answer with embeddings."
            ) from exc
        vectors = [item.embedding for item in sorted(parsed.data, key=lambda item: item.index)]
        if len(vectors) != len(texts):
            raise EmbeddingsUnavailableError(
                f"The embeddings endpoint returned {len(vectors)} vectors for {len(texts)} texts."
            )
        if any(len(vector) != EMBEDDING_DIMENSIONS for vector in vectors):
            raise EmbeddingsUnavailableError(
                f"The embeddings model {self.model!r} does not make {EMBEDDING_DIMENSIONS}-"
                "dimensional vectors, the size the knowledge base stores."
            )
        return vectors


def embedder_from_settings(settings: Settings, http: httpx.AsyncClient) -> Embedder | None:
    """The configured embedder, or None when EMBEDDINGS_BASE_URL is not set."""
    if not settings.embeddings_base_url:
        return None
    key = settings.embeddings_api_key
    return Embedder(
        http=http,
        url=settings.embeddings_base_url.rstrip("/") + "/embeddings",
        model=settings.embeddings_model,
        api_key=key.get_secret_value() if key else None,
    )
