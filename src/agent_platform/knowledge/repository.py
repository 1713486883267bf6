"""Every query on the knowledge base. Each names its organization itself: row-level security
backs that up where the transaction is scoped, but searches run unscoped (full-text search
cannot use its index under row-level security; see service.search_passages), and so may the
reply flow's transaction."""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    any_,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import REGCONFIG
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.types import UserDefinedType

from agent_platform.agent.models import Agent
from agent_platform.kit.pagination import PageRequest, newest_first
from agent_platform.knowledge.chunking import Chunk
from agent_platform.knowledge.models import (
    MAX_HEADING_CHARS,
    SEARCH_CONFIGURATION,
    KnowledgeChunk,
    KnowledgeDocument,
    KnowledgeFaq,
)

_CONFIGURATION = cast(literal(SEARCH_CONFIGURATION), REGCONFIG)
# A query of any length is searched by this many of its words at most: enough for any
# question, and a bound on the cost of the "any word" query.
MAX_QUERY_WORDS = 32
_WORD = re.compile(r"\w+")
# Ranking reads every matching chunk; a query matching more than this many (a word that is in
# most of a large knowledge base) is ranked among the first this many matches found. Such a
# query says too little for the best of all its matches to be much better than those, and
# its cost stays bounded: the p95 of bench/knowledge_search.py at 100k chunks depends on it.
MAX_RANKED_MATCHES = 2000


class _Vector(UserDefinedType[str]):
    """pgvector's type, for the statements that touch the unmapped `embedding` column; values
    travel as its text form, '[0.1,0.2,…]'."""

    cache_ok = True

    def get_col_spec(self, **_: Any) -> str:
        return "vector"


_EMBEDDING = literal_column("knowledge_chunks.embedding", _Vector())


def _vector_literal(vector: Sequence[float]) -> str:
    # float4 is what pgvector keeps: 7 significant digits lose nothing.
    return "[" + ",".join(f"{value:.7g}" for value in vector) + "]"


def _visible_to(
    column: InstrumentedAttribute[uuid.UUID | None], agent_id: uuid.UUID | None
) -> ColumnElement[bool]:
    """Rows an agent uses: the organization's shared ones and its own. No agent: all rows."""
    if agent_id is None:
        return true()
    return or_(column.is_(None), column == agent_id)


async def agent_exists(
    session: AsyncSession, organization_id: uuid.UUID, agent_id: uuid.UUID
) -> bool:
    found = await session.scalar(
        select(Agent.id).where(Agent.id == agent_id, Agent.organization_id == organization_id)
    )
    return found is not None


# --- documents and chunks --------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentRecord:
    document: KnowledgeDocument
    chunk_count: int

    # The position kit.pagination pages by.
    @property
    def created_at(self) -> datetime:
        return self.document.created_at

    @property
    def id(self) -> uuid.UUID:
        return self.document.id


_CHUNK_COUNT = (
    select(func.count())
    .where(KnowledgeChunk.document_id == KnowledgeDocument.id)
    .correlate(KnowledgeDocument)
    .scalar_subquery()
)


async def add_document(session: AsyncSession, document: KnowledgeDocument) -> KnowledgeDocument:
    session.add(document)
    await session.flush()
    return document


async def add_chunks(
    session: AsyncSession, document: KnowledgeDocument, chunks: Sequence[Chunk]
) -> list[uuid.UUID]:
    """Store the document's chunks in order; their ids, in the same order."""
    chunk_ids = [uuid.uuid4() for _ in chunks]
    rows = [
        {
            "id": chunk_id,
            "organization_id": document.organization_id,
            "document_id": document.id,
            "agent_id": document.agent_id,
            "position": position,
            # A heading is the chunk's label: a very long one is cut to fit, not refused.
            "heading": chunk.heading[:MAX_HEADING_CHARS] if chunk.heading else None,
            "content": chunk.text,
        }
        for position, (chunk_id, chunk) in enumerate(zip(chunk_ids, chunks, strict=True))
    ]
    if rows:
        await session.execute(insert(KnowledgeChunk), rows)
    return chunk_ids


async def store_embeddings(
    session: AsyncSession, chunk_ids: Sequence[uuid.UUID], vectors: Sequence[Sequence[float]]
) -> None:
    """Give chunks their vectors, all in one statement."""
    await session.execute(
        text(
            "UPDATE knowledge_chunks SET embedding = CAST(given.embedding AS vector) "
            "FROM unnest(CAST(:ids AS uuid[]), CAST(:embeddings AS text[])) "
            "AS given(id, embedding) WHERE knowledge_chunks.id = given.id"
        ),
        {"ids": list(chunk_ids), "embeddings": [_vector_literal(v) for v in vectors]},
    )


async def document_record(
    session: AsyncSession, organization_id: uuid.UUID, document_id: uuid.UUID
) -> DocumentRecord | None:
    row = (
        await session.execute(
            select(KnowledgeDocument, _CHUNK_COUNT).where(
                KnowledgeDocument.id == document_id,
                KnowledgeDocument.organization_id == organization_id,
            )
        )
    ).first()
    return DocumentRecord(*row) if row else None


async def document_records(
    session: AsyncSession,
    organization_id: uuid.UUID,
    page: PageRequest,
    *,
    agent_id: uuid.UUID | None,
) -> list[DocumentRecord]:
    statement = select(KnowledgeDocument, _CHUNK_COUNT).where(
        KnowledgeDocument.organization_id == organization_id,
        _visible_to(KnowledgeDocument.agent_id, agent_id),
    )
    paged = newest_first(statement, KnowledgeDocument.created_at, KnowledgeDocument.id, page)
    return [DocumentRecord(*row) for row in await session.execute(paged)]


async def delete_document(
    session: AsyncSession, organization_id: uuid.UUID, document_id: uuid.UUID
) -> bool:
    """Delete it and its chunks; False when the organization has no such document."""
    result = await session.execute(
        delete(KnowledgeDocument).where(
            KnowledgeDocument.id == document_id,
            KnowledgeDocument.organization_id == organization_id,
        )
    )
    return bool(getattr(result, "rowcount", 0))


# --- search ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PassageRow:
    chunk_id: uuid.UUID
    document_id: uuid.UUID
    document_title: str
    source_url: str | None
    heading: str | None
    content: str


def _any_word_query(query: str) -> str | None:
    """The query's words joined by OR, in to_tsquery syntax; word characters only, so it can
    never be a syntax error. None when it has no words."""
    words = list(dict.fromkeys(_WORD.findall(query.lower())))[:MAX_QUERY_WORDS]
    return " | ".join(words) if words else None


async def text_matches(
    session: AsyncSession,
    organization_id: uuid.UUID,
    agent_id: uuid.UUID | None,
    query: str,
    *,
    every_word: bool,
    limit: int,
) -> list[tuple[uuid.UUID, float]]:
    """Chunks matching `query` by full text, best first (of at most MAX_RANKED_MATCHES), with
    their rank (0–1).

    Every word: the query in web-search syntax ("quoted phrases", -excluded, or), which never
    fails to parse. Any word: chunks containing at least one of its words.
    """
    if every_word:
        tsquery = func.websearch_to_tsquery(_CONFIGURATION, query)
    else:
        alternatives = _any_word_query(query)
        if alternatives is None:
            return []
        tsquery = func.to_tsquery(_CONFIGURATION, alternatives)
    # A scalar subquery, computed once per statement rather than once per row.
    parsed = select(tsquery).scalar_subquery()
    matches = (
        select(KnowledgeChunk.id, KnowledgeChunk.search_vector)
        .where(
            KnowledgeChunk.organization_id == organization_id,
            _visible_to(KnowledgeChunk.agent_id, agent_id),
            KnowledgeChunk.search_vector.bool_op("@@")(parsed),
        )
        .limit(MAX_RANKED_MATCHES)
        .subquery("matches")
    )
    # Normalization 32 maps the rank into 0–1: rank / (rank + 1).
    rank = func.ts_rank(matches.c.search_vector, parsed, 32).label("rank")
    statement = select(matches.c.id, rank).order_by(rank.desc(), matches.c.id).limit(limit)
    return [(row.id, float(row.rank)) for row in await session.execute(statement)]


async def nearest_chunks(
    session: AsyncSession,
    organization_id: uuid.UUID,
    agent_id: uuid.UUID | None,
    vector: Sequence[float],
    *,
    limit: int,
    iterative_scan: bool,
) -> list[uuid.UUID]:
    """Chunks whose vectors are nearest to `vector` (cosine distance), nearest first."""
    if iterative_scan:
        # pgvector ≥ 0.8: the HNSW scan goes on until `limit` rows pass the filters, which
        # would otherwise be applied to a fixed number of nearest rows of every organization.
        await session.execute(
            text("SELECT set_config('hnsw.iterative_scan', 'strict_order', true)")
        )
    distance = _EMBEDDING.op("<=>", return_type=Float)(
        cast(bindparam("vector", _vector_literal(vector)), _Vector())
    )
    statement = (
        select(KnowledgeChunk.id)
        .where(
            KnowledgeChunk.organization_id == organization_id,
            _visible_to(KnowledgeChunk.agent_id, agent_id),
            _EMBEDDING.is_not(None),
        )
        .order_by(distance)
        .limit(limit)
    )
    return list(await session.scalars(statement))


async def passage_rows(
    session: AsyncSession, organization_id: uuid.UUID, chunk_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, PassageRow]:
    """The chunks with their documents' titles and URLs, by chunk id."""
    statement = (
        select(
            KnowledgeChunk.id,
            KnowledgeChunk.document_id,
            KnowledgeDocument.title,
            KnowledgeDocument.source_url,
            KnowledgeChunk.heading,
            KnowledgeChunk.content,
        )
        .join(KnowledgeDocument, KnowledgeDocument.id == KnowledgeChunk.document_id)
        .where(
            KnowledgeChunk.organization_id == organization_id,
            KnowledgeChunk.id.in_(chunk_ids),
        )
    )
    return {row[0]: PassageRow(*row) for row in await session.execute(statement)}


@dataclass(frozen=True)
class VectorColumn:
    present: bool
    iterative_scan: bool  # pgvector ≥ 0.8


async def vector_column(connection: AsyncConnection) -> VectorColumn:
    """Whether chunks have the vector column (pgvector was there when 0006 ran)."""
    row = (
        await connection.execute(
            text(
                "SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = "
                "'knowledge_chunks'::regclass AND attname = 'embedding' AND NOT attisdropped), "
                "(SELECT extversion FROM pg_extension WHERE extname = 'vector')"
            )
        )
    ).one()
    present, version = bool(row[0]), row[1]
    numbers = tuple(int(part) for part in version.split(".")[:2]) if version else (0, 0)
    return VectorColumn(present=present, iterative_scan=present and numbers >= (0, 8))


# --- FAQ ---------------------------------------------------------------------------------------


async def add_faq(session: AsyncSession, faq: KnowledgeFaq) -> KnowledgeFaq:
    session.add(faq)
    await session.flush()
    return faq


async def get_faq(
    session: AsyncSession, organization_id: uuid.UUID, faq_id: uuid.UUID
) -> KnowledgeFaq | None:
    return await session.scalar(
        select(KnowledgeFaq).where(
            KnowledgeFaq.id == faq_id, KnowledgeFaq.organization_id == organization_id
        )
    )


async def faqs(
    session: AsyncSession,
    organization_id: uuid.UUID,
    page: PageRequest,
    *,
    agent_id: uuid.UUID | None,
) -> list[KnowledgeFaq]:
    statement = select(KnowledgeFaq).where(
        KnowledgeFaq.organization_id == organization_id,
        _visible_to(KnowledgeFaq.agent_id, agent_id),
    )
    paged = newest_first(statement, KnowledgeFaq.created_at, KnowledgeFaq.id, page)
    return list(await session.scalars(paged))


async def change_faq(
    session: AsyncSession, organization_id: uuid.UUID, faq_id: uuid.UUID, changes: dict[str, Any]
) -> KnowledgeFaq | None:
    """Apply `changes` (column: value); the FAQ as it now is, or None when there is none."""
    return await session.scalar(
        update(KnowledgeFaq)
        .where(KnowledgeFaq.id == faq_id, KnowledgeFaq.organization_id == organization_id)
        .values(**changes)
        .returning(KnowledgeFaq)
        .execution_options(populate_existing=True)
    )


async def delete_faq(session: AsyncSession, organization_id: uuid.UUID, faq_id: uuid.UUID) -> bool:
    result = await session.execute(
        delete(KnowledgeFaq).where(
            KnowledgeFaq.id == faq_id, KnowledgeFaq.organization_id == organization_id
        )
    )
    return bool(getattr(result, "rowcount", 0))


def _faq_score(question: str) -> ColumnElement[float]:
    """How well an FAQ's question matches `question`, 0–1, by their words (stemmed, stop words
    left out): the share of the FAQ question's words that `question` has, times the share of
    `question`'s words that the FAQ question has. "How much does a sofa cost?" shares two of
    three words with "How much does delivery cost?" and scores 4/9; the same question with a
    greeting and a city added keeps all three of the FAQ's and scores 3/5. An FAQ question of
    stop words only has no words to match and never scores."""
    # Immutable functions of a constant: PostgreSQL computes it once, when planning.
    asked = func.tsvector_to_array(func.to_tsvector(_CONFIGURATION, question))
    faq_words = func.tsvector_to_array(func.to_tsvector(_CONFIGURATION, KnowledgeFaq.question))
    faq_word = func.unnest(faq_words).table_valued("lexeme").render_derived()
    shared = (
        select(func.count())
        .select_from(faq_word)
        .where(faq_word.c.lexeme == any_(asked))
        .scalar_subquery()
    )
    # Lexemes of a tsvector are distinct, so the cardinalities count words.
    score = cast(shared * shared, Float) / func.nullif(
        func.cardinality(faq_words) * func.cardinality(asked), 0
    )
    return type_coerce(score, Float)


async def closest_faq(
    session: AsyncSession,
    organization_id: uuid.UUID,
    agent_id: uuid.UUID | None,
    question: str,
    *,
    min_score: float,
) -> tuple[KnowledgeFaq, float] | None:
    """The enabled FAQ whose question best matches `question`, if it scores at least
    `min_score`."""
    score = _faq_score(question).label("score")
    row = (
        await session.execute(
            select(KnowledgeFaq, score)
            .where(
                KnowledgeFaq.organization_id == organization_id,
                KnowledgeFaq.enabled.is_(True),
                _visible_to(KnowledgeFaq.agent_id, agent_id),
                score >= min_score,
            )
            .order_by(score.desc(), KnowledgeFaq.created_at)
            .limit(1)
        )
    ).first()
    return (row[0], float(row[1])) if row else None
