"""The knowledge base's rules: documents in (text, upload, web page) and out, FAQ pairs, and
search for the API.

Each change is one transaction scoped to the organization. The slow and external work
(fetching a page, extracting a PDF, embedding chunks or a query) happens before it opens; an
agent named in the request is checked first, so a bad request pays for none of it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from pathlib import PurePath
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.agent.management import AgentNotFoundError
from agent_platform.config import Settings
from agent_platform.db.session import tenant_transaction, transaction
from agent_platform.kit.errors import AppError, NotFoundError
from agent_platform.kit.pagination import PageRequest, RowsPage
from agent_platform.kit.safe_fetch import FetchFailedError, FetchLimits
from agent_platform.knowledge import repository
from agent_platform.knowledge.chunking import Chunk, split_into_chunks
from agent_platform.knowledge.embeddings import EmbeddingsUnavailableError, embedder_from_settings
from agent_platform.knowledge.extract import clean_text, text_of_upload
from agent_platform.knowledge.fetch import fetch_document
from agent_platform.knowledge.models import (
    MAX_TITLE_CHARS,
    MAX_URL_CHARS,
    DocumentKind,
    KnowledgeDocument,
    KnowledgeFaq,
)
from agent_platform.knowledge.repository import DocumentRecord
from agent_platform.knowledge.results import SearchResult, VectorSearch
from agent_platform.knowledge.retrieval import MAX_QUESTION_CHARS, FoundPassages, find_passages
from agent_platform.knowledge.vectors import vector_search_state
from agent_platform.services import Services

log = structlog.get_logger("knowledge")


class DocumentNotFoundError(NotFoundError):
    code = "document_not_found"


class FaqNotFoundError(NotFoundError):
    code = "faq_not_found"


class EmptyDocumentError(AppError):
    status_code = 422
    code = "empty_document"


class DocumentTooLargeError(AppError):
    status_code = 413
    code = "payload_too_large"


class EmptyQueryError(AppError):
    status_code = 422
    code = "empty_query"


async def _require_agent(
    session: AsyncSession, organization_id: uuid.UUID, agent_id: uuid.UUID | None
) -> None:
    if agent_id is not None and not await repository.agent_exists(
        session, organization_id, agent_id
    ):
        raise AgentNotFoundError(agent_id)


async def _ensure_agent(
    services: Services, organization_id: uuid.UUID, agent_id: uuid.UUID | None
) -> None:
    if agent_id is not None:
        async with tenant_transaction(services.sessions, organization_id) as session:
            await _require_agent(session, organization_id, agent_id)


def check_document_size(settings: Settings, size: int) -> None:
    limit = settings.knowledge_max_document_bytes
    if size > limit:
        raise DocumentTooLargeError(
            f"The document is {size} bytes; at most {limit} are accepted "
            "(KNOWLEDGE_MAX_DOCUMENT_BYTES)."
        )


def _title(*candidates: str | None) -> str:
    """The first candidate with something in it, cleaned and cut to fit the column."""
    chosen = next((c.strip() for c in candidates if c and c.strip()), "Untitled")
    return clean_text(chosen)[:MAX_TITLE_CHARS]


# --- documents -------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewDocument:
    title: str
    kind: DocumentKind
    text: str
    agent_id: uuid.UUID | None
    source_url: str | None = None


async def add_text_document(
    services: Services, organization_id: uuid.UUID, new: NewDocument
) -> DocumentRecord:
    await _ensure_agent(services, organization_id, new.agent_id)
    return await _store(services, organization_id, replace(new, text=clean_text(new.text)))


async def add_uploaded_document(
    services: Services,
    organization_id: uuid.UUID,
    *,
    filename: str,
    media_type: str,
    data: bytes,
    title: str | None,
    agent_id: uuid.UUID | None,
) -> DocumentRecord:
    check_document_size(services.settings, len(data))
    await _ensure_agent(services, organization_id, agent_id)
    kind, text = text_of_upload(filename, media_type, data)
    new = NewDocument(_title(title, PurePath(filename).stem), kind, text, agent_id)
    return await _store(services, organization_id, new)


async def add_web_document(
    services: Services,
    organization_id: uuid.UUID,
    *,
    url: str,
    title: str | None,
    agent_id: uuid.UUID | None,
) -> DocumentRecord:
    await _ensure_agent(services, organization_id, agent_id)
    settings = services.settings
    fetched = await fetch_document(
        url,
        FetchLimits(
            max_bytes=settings.web_fetch_max_bytes,
            timeout_seconds=settings.web_fetch_timeout_seconds,
            allow_private_networks=settings.allow_private_network_fetch,
        ),
    )
    if len(fetched.url) > MAX_URL_CHARS:
        raise FetchFailedError(
            f"The page was redirected to an address longer than {MAX_URL_CHARS} characters."
        )
    new = NewDocument(
        _title(title, fetched.title, fetched.url),
        fetched.kind,
        fetched.text,
        agent_id,
        source_url=fetched.url,
    )
    return await _store(services, organization_id, new)


async def _store(
    services: Services, organization_id: uuid.UUID, new: NewDocument
) -> DocumentRecord:
    if not new.text.strip():
        raise EmptyDocumentError("The document has no text.")
    check_document_size(services.settings, len(new.text.encode()))
    chunks = split_into_chunks(new.text)
    vectors = await _chunk_vectors(services, chunks)
    async with tenant_transaction(services.sessions, organization_id) as session:
        # Checked again: the agent may have been deleted while the document was prepared.
        await _require_agent(session, organization_id, new.agent_id)
        document = await repository.add_document(
            session,
            KnowledgeDocument(
                organization_id=organization_id,
                agent_id=new.agent_id,
                title=new.title,
                kind=new.kind.value,
                source_url=new.source_url,
                content=new.text,
            ),
        )
        chunk_ids = await repository.add_chunks(session, document, chunks)
        if vectors is not None:
            await repository.store_embeddings(session, chunk_ids, vectors)
    log.info(
        "knowledge_document_added",
        organization_id=str(organization_id),
        document_id=str(document.id),
        kind=new.kind.value,
        chunks=len(chunk_ids),
        embedded=vectors is not None,
    )
    return DocumentRecord(document, len(chunk_ids))


async def _chunk_vectors(services: Services, chunks: list[Chunk]) -> list[list[float]] | None:
    """The chunks' vectors when vector search is on; a failing endpoint fails the request
    (502) before anything is stored, rather than keeping a document search half ignores."""
    embedder = embedder_from_settings(services.settings, services.http)
    state = await vector_search_state(services.engine, embedder)
    if embedder is None or not state.enabled:
        return None
    # The heading travels with each chunk: it is context the chunk's own words may lack.
    return await embedder.embed(
        [f"{chunk.heading}\n\n{chunk.text}" if chunk.heading else chunk.text for chunk in chunks]
    )


async def list_documents(
    services: Services, organization_id: uuid.UUID, page: PageRequest, agent_id: uuid.UUID | None
) -> RowsPage[DocumentRecord]:
    async with tenant_transaction(services.sessions, organization_id) as session:
        await _require_agent(session, organization_id, agent_id)
        records = await repository.document_records(
            session, organization_id, page, agent_id=agent_id
        )
    return page.cut(records)


async def get_document(
    services: Services, organization_id: uuid.UUID, document_id: uuid.UUID
) -> DocumentRecord:
    async with tenant_transaction(services.sessions, organization_id) as session:
        record = await repository.document_record(session, organization_id, document_id)
    if record is None:
        raise DocumentNotFoundError(f"No document {document_id} in this organization.")
    return record


async def delete_document(
    services: Services, organization_id: uuid.UUID, document_id: uuid.UUID
) -> None:
    async with tenant_transaction(services.sessions, organization_id) as session:
        if not await repository.delete_document(session, organization_id, document_id):
            raise DocumentNotFoundError(f"No document {document_id} in this organization.")


# --- search ----------------------------------------------------------------------------------


async def search(
    services: Services,
    organization_id: uuid.UUID,
    query: str,
    *,
    agent_id: uuid.UUID | None,
    limit: int,
) -> SearchResult:
    if not any(character.isalnum() for character in query):
        raise EmptyQueryError("The query has no words to search for.")
    query_vector, vector_search = await _question_vector(services, query)
    found = await search_passages(
        services, organization_id, query, query_vector=query_vector, agent_id=agent_id, limit=limit
    )
    return SearchResult(found.passages, found.every_word_matched, vector_search)


async def search_passages(
    services: Services,
    organization_id: uuid.UUID,
    query: str,
    *,
    query_vector: list[float] | None,
    agent_id: uuid.UUID | None,
    limit: int,
) -> FoundPassages:
    """retrieval.find_passages in a transaction of its own, given the query's vector if any.

    The transaction is not scoped to the organization's role: under row-level security
    PostgreSQL may not use the full-text index (the @@ operator is not leakproof) and reads
    the whole table instead, 100 ms and more at 100k chunks. Every query of the search names
    the organization itself, and the tests hold it to that.
    """
    async with transaction(services.sessions) as session:
        await _require_agent(session, organization_id, agent_id)
        return await find_passages(
            session, organization_id, agent_id, query, query_vector=query_vector, limit=limit
        )


async def embed_question(services: Services, question: str) -> list[float] | None:
    """The question's vector for retrieval.answer_context, or None when vector search is off
    or the embeddings endpoint failed (logged): full-text search still answers."""
    vector, _ = await _question_vector(services, question)
    return vector


async def _question_vector(
    services: Services, question: str
) -> tuple[list[float] | None, VectorSearch]:
    embedder = embedder_from_settings(services.settings, services.http)
    state = await vector_search_state(services.engine, embedder)
    if embedder is None or not state.enabled:
        return None, state
    try:
        vectors = await embedder.embed([question[:MAX_QUESTION_CHARS]])
    except EmbeddingsUnavailableError as exc:
        log.warning("query_embedding_failed", error=exc.message)
        return None, VectorSearch(
            enabled=False, reason=f"the embeddings endpoint failed: {exc.message}"
        )
    return vectors[0], state


# --- FAQ -------------------------------------------------------------------------------------


async def add_faq(
    services: Services,
    organization_id: uuid.UUID,
    *,
    question: str,
    answer: str,
    enabled: bool,
    agent_id: uuid.UUID | None,
) -> KnowledgeFaq:
    async with tenant_transaction(services.sessions, organization_id) as session:
        await _require_agent(session, organization_id, agent_id)
        return await repository.add_faq(
            session,
            KnowledgeFaq(
                organization_id=organization_id,
                agent_id=agent_id,
                question=question,
                answer=answer,
                enabled=enabled,
            ),
        )


async def list_faqs(
    services: Services, organization_id: uuid.UUID, page: PageRequest, agent_id: uuid.UUID | None
) -> RowsPage[KnowledgeFaq]:
    async with tenant_transaction(services.sessions, organization_id) as session:
        await _require_agent(session, organization_id, agent_id)
        found = await repository.faqs(session, organization_id, page, agent_id=agent_id)
    return page.cut(found)


async def get_faq(
    services: Services, organization_id: uuid.UUID, faq_id: uuid.UUID
) -> KnowledgeFaq:
    async with tenant_transaction(services.sessions, organization_id) as session:
        faq = await repository.get_faq(session, organization_id, faq_id)
    if faq is None:
        raise FaqNotFoundError(f"No FAQ {faq_id} in this organization.")
    return faq


async def change_faq(
    services: Services, organization_id: uuid.UUID, faq_id: uuid.UUID, changes: dict[str, Any]
) -> KnowledgeFaq:
    """Apply `changes` (field: new value; `agent_id` None makes it shared)."""
    async with tenant_transaction(services.sessions, organization_id) as session:
        await _require_agent(session, organization_id, changes.get("agent_id"))
        faq = await repository.change_faq(session, organization_id, faq_id, changes)
    if faq is None:
        raise FaqNotFoundError(f"No FAQ {faq_id} in this organization.")
    return faq


async def delete_faq(services: Services, organization_id: uuid.UUID, faq_id: uuid.UUID) -> None:
    async with tenant_transaction(services.sessions, organization_id) as session:
        if not await repository.delete_faq(session, organization_id, faq_id):
            raise FaqNotFoundError(f"No FAQ {faq_id} in this organization.")
