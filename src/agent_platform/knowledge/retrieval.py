"""What the knowledge base knows about a question, inside the caller's transaction: passages
by full text (and, given the question's vector, by vector too, fused by rank), the closest
FAQ, and the answer context the agent replies from.

Every query here names the organization itself and takes no role or scope, so the reply flow
can call it inside its own transaction; only pgvector's scan mode is set, for the rest of that
transaction. That transaction should not be scoped to the organization's role
(db.session.scope_to_organization): under row-level security PostgreSQL may not use the
full-text index, and each search reads the whole table.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.knowledge import repository
from agent_platform.knowledge.ranking import reciprocal_rank_fusion
from agent_platform.knowledge.results import FaqMatch, KnowledgeAnswer, MatchedBy, Passage
from agent_platform.knowledge.vectors import database_vector_column

# The FAQ score (repository._faq_score) at or above which an FAQ's answer is given as it is:
# the customer's question has most of the FAQ question's words, and not many more.
DEFAULT_FAQ_THRESHOLD = 0.5
DEFAULT_PASSAGE_LIMIT = 5
# With vectors on, each ranking offers this many times the passages wanted to the fusion.
FUSION_POOL_FACTOR = 3
# The part of a long message that is searched; a question is rarely longer.
MAX_QUESTION_CHARS = 1000
# Quotes, a leading minus or "or": a query that says exactly what it wants is not loosened to
# "any word" when it finds nothing (that would bring back what it excluded).
_SEARCH_OPERATORS = re.compile(r'"|(?:^|\s)-\w|\bor\b', re.IGNORECASE)


def _searchable(question: str) -> str:
    """The part of `question` searched, without NUL (which PostgreSQL text cannot hold)."""
    return question[:MAX_QUESTION_CHARS].replace("\x00", "")


@dataclass(frozen=True)
class FoundPassages:
    passages: list[Passage]
    every_word_matched: bool


async def find_passages(
    session: AsyncSession,
    organization_id: uuid.UUID,
    agent_id: uuid.UUID | None,
    question: str,
    *,
    query_vector: Sequence[float] | None = None,
    limit: int = DEFAULT_PASSAGE_LIMIT,
) -> FoundPassages:
    """The best passages for `question`, visible to `agent_id` (all of the organization's
    when None). Text first requires every word, and falls back to any word when nothing has
    them all (unless the query uses search operators). A `query_vector` adds the nearest
    chunks, where the database has vectors."""
    question = _searchable(question)
    vector_query = await _vector_query(session, query_vector)
    pool = limit * FUSION_POOL_FACTOR if vector_query is not None else limit

    text_hits = await repository.text_matches(
        session, organization_id, agent_id, question, every_word=True, limit=pool
    )
    every_word_matched = bool(text_hits)
    if not every_word_matched and not _SEARCH_OPERATORS.search(question):
        text_hits = await repository.text_matches(
            session, organization_id, agent_id, question, every_word=False, limit=pool
        )
    vector_hits: list[uuid.UUID] = []
    if vector_query is not None:
        vector_hits = await repository.nearest_chunks(
            session,
            organization_id,
            agent_id,
            vector_query.vector,
            limit=pool,
            iterative_scan=vector_query.iterative_scan,
        )
    ranked = (
        reciprocal_rank_fusion([[chunk_id for chunk_id, _ in text_hits], vector_hits])
        if vector_query is not None
        else text_hits
    )[:limit]

    rows = await repository.passage_rows(
        session, organization_id, [chunk_id for chunk_id, _ in ranked]
    )
    by_text, by_vector = {chunk_id for chunk_id, _ in text_hits}, set(vector_hits)
    passages = [
        _passage(rows[chunk_id], score, chunk_id in by_text, chunk_id in by_vector)
        for chunk_id, score in ranked
        if chunk_id in rows  # deleted between the two statements
    ]
    return FoundPassages(passages, every_word_matched)


@dataclass(frozen=True)
class _VectorQuery:
    vector: Sequence[float]
    iterative_scan: bool


async def _vector_query(
    session: AsyncSession, query_vector: Sequence[float] | None
) -> _VectorQuery | None:
    """The vector search to run, if a vector was given and the database keeps vectors."""
    if query_vector is None:
        return None
    column = await database_vector_column((await session.connection()).engine)
    return _VectorQuery(query_vector, column.iterative_scan) if column.present else None


def _passage(row: repository.PassageRow, score: float, by_text: bool, by_vector: bool) -> Passage:
    matched_by = {MatchedBy.TEXT} if by_text else set()
    if by_vector:
        matched_by.add(MatchedBy.VECTOR)
    return Passage(
        chunk_id=row.chunk_id,
        document_id=row.document_id,
        document_title=row.document_title,
        source_url=row.source_url,
        heading=row.heading,
        text=row.content,
        score=score,
        matched_by=frozenset(matched_by),
    )


async def closest_faq(
    session: AsyncSession,
    organization_id: uuid.UUID,
    agent_id: uuid.UUID | None,
    question: str,
    *,
    threshold: float = DEFAULT_FAQ_THRESHOLD,
) -> FaqMatch | None:
    found = await repository.closest_faq(
        session, organization_id, agent_id, _searchable(question), min_score=threshold
    )
    if found is None:
        return None
    faq, score = found
    return FaqMatch(faq_id=faq.id, question=faq.question, answer=faq.answer, score=score)


async def answer_context(
    session: AsyncSession,
    organization_id: uuid.UUID,
    agent_id: uuid.UUID | None,
    question: str,
    *,
    query_vector: Sequence[float] | None = None,
    faq_threshold: float = DEFAULT_FAQ_THRESHOLD,
    limit: int = DEFAULT_PASSAGE_LIMIT,
) -> KnowledgeAnswer:
    """What the agent may answer `question` from (see KnowledgeAnswer for `confident`).

    `query_vector` is the question's embedding (service.embed_question), computed before the
    caller's transaction opened: no network call happens here.
    """
    faq = await closest_faq(session, organization_id, agent_id, question, threshold=faq_threshold)
    found = await find_passages(
        session, organization_id, agent_id, question, query_vector=query_vector, limit=limit
    )
    best = found.passages[0] if found.passages else None
    passage_answers = (
        found.every_word_matched and best is not None and (MatchedBy.TEXT in best.matched_by)
    )
    return KnowledgeAnswer(
        faq=faq, passages=found.passages, confident=faq is not None or passage_answers
    )
