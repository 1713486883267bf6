"""What the knowledge base answers with: passages and their sources, a direct FAQ answer.

Plain data with no database types, so the agent's pure runtime can take it as it is.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum


class MatchedBy(StrEnum):
    TEXT = "text"  # full-text search
    VECTOR = "vector"  # nearest by embedding


@dataclass(frozen=True)
class Passage:
    chunk_id: uuid.UUID
    document_id: uuid.UUID
    document_title: str
    source_url: str | None
    heading: str | None
    text: str
    # Higher is better, comparable within one search only: a full-text rank (0–1), or with
    # vectors on, the reciprocal-rank fusion of both rankings.
    score: float
    matched_by: frozenset[MatchedBy]


@dataclass(frozen=True)
class FaqMatch:
    faq_id: uuid.UUID
    question: str
    answer: str
    score: float  # how much the two questions share their words, 0–1 (repository._faq_score)


@dataclass(frozen=True)
class VectorSearch:
    enabled: bool
    reason: str | None = None  # why it is off


@dataclass(frozen=True)
class SearchResult:
    passages: list[Passage]
    # The passages found by text contain every word of the query; when none did, they are
    # those containing any of its words.
    every_word_matched: bool
    vector_search: VectorSearch


@dataclass(frozen=True)
class KnowledgeAnswer:
    """What the agent may answer from.

    `confident` is true for an FAQ match at or above the threshold (answer with `faq.answer`
    as it is), or when the best passage contains every word of the question. A reply flow
    with no language model answers only when it is true and hands over otherwise: a passage
    that merely shares a word or a vector's neighbourhood with the question is no answer.
    """

    faq: FaqMatch | None
    passages: list[Passage]
    confident: bool
