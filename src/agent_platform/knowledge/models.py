"""The knowledge base's tables: documents, their searchable chunks, curated FAQ pairs.

A chunk's vector (`embedding`, pgvector) is not mapped here: the column exists only where the
database had pgvector when migration 0006 ran, so the repository reads and writes it with
statements of its own, after checking that it is there.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Computed,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR, UUID
from sqlalchemy.orm import Mapped, mapped_column

from agent_platform.db.base import Base, IdMixin, TenantMixin, TimestampMixin

# PostgreSQL's `russian` configuration stems Cyrillic words with the Russian Snowball stemmer
# and Latin-letter words with the English one (its `asciiword` mapping), so one column and
# one index serve both languages: "цены" finds "цена", "prices" finds "price".
SEARCH_CONFIGURATION = "russian"

MAX_TITLE_CHARS = 300
MAX_URL_CHARS = 2000
MAX_HEADING_CHARS = 500

# The size of a stored vector (OpenAI's text-embedding-3-small, ada-002); fixed by the column.
EMBEDDING_DIMENSIONS = 1536


class DocumentKind(StrEnum):
    TEXT = "text"
    MARKDOWN = "markdown"
    PDF = "pdf"
    WEB = "web"


class KnowledgeDocument(IdMixin, TenantMixin, TimestampMixin, Base):
    """A document as given (its extracted text); searched through its chunks."""

    __tablename__ = "knowledge_documents"
    __table_args__ = (
        CheckConstraint("kind IN ('text', 'markdown', 'pdf', 'web')", name="kind"),
        Index("ix_knowledge_documents_org_created_at", "organization_id", "created_at", "id"),
    )

    # None: every agent of the organization uses it; else only this agent.
    agent_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("agents.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str] = mapped_column(String(MAX_TITLE_CHARS))
    kind: Mapped[str] = mapped_column(String(16))
    source_url: Mapped[str | None] = mapped_column(String(MAX_URL_CHARS))
    content: Mapped[str] = mapped_column(Text)


class KnowledgeChunk(IdMixin, TenantMixin, Base):
    """A passage of a document: what search finds and what the model is given, with its
    source (the document's title and URL, the heading it sits under)."""

    __tablename__ = "knowledge_chunks"
    __table_args__ = (
        Index("ix_knowledge_chunks_search_vector", "search_vector", postgresql_using="gin"),
    )

    document_id: Mapped[uuid.UUID] = mapped_column(
        UUID(as_uuid=True), ForeignKey("knowledge_documents.id", ondelete="CASCADE"), index=True
    )
    # The document's, copied so that search filters by agent without a join.
    agent_id: Mapped[uuid.UUID | None] = mapped_column(UUID(as_uuid=True))
    position: Mapped[int] = mapped_column(Integer)
    heading: Mapped[str | None] = mapped_column(String(MAX_HEADING_CHARS))
    content: Mapped[str] = mapped_column(Text)
    # Words under a heading count more than words in the text (weights A and D).
    search_vector: Mapped[str] = mapped_column(
        TSVECTOR,
        Computed(
            f"setweight(to_tsvector('{SEARCH_CONFIGURATION}', coalesce(heading, '')), 'A') || "
            f"setweight(to_tsvector('{SEARCH_CONFIGURATION}', content), 'D')",
            persisted=True,
        ),
    )


class KnowledgeFaq(IdMixin, TenantMixin, TimestampMixin, Base):
    """A curated question and its answer, given as is when a customer asks about the same."""

    __tablename__ = "knowledge_faqs"
    __table_args__ = (
        Index("ix_knowledge_faqs_org_created_at", "organization_id", "created_at", "id"),
    )

    agent_id: Mapped[uuid.UUID | None] = mapped_column(
        UUID(as_uuid=True), ForeignKey("agents.id", ondelete="CASCADE"), index=True
    )
    question: Mapped[str] = mapped_column(Text)
    answer: Mapped[str] = mapped_column(Text)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
