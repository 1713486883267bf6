"""The knowledge base: documents, chunks searchable by full text, FAQ pairs.

Where the server has pgvector, chunks also get a vector column with an HNSW index; where it
has not, the knowledge base works on full text alone (knowledge.vectors says so at run time).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 16:10:00
"""

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from agent_platform.db.migrations.tenancy import (
    keep_updated_at,
    protect_tenant_table,
    unprotect_tenant_table,
)

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As of this revision (knowledge.models holds the live values).
SEARCH_VECTOR = (
    "setweight(to_tsvector('russian', coalesce(heading, '')), 'A') || "
    "setweight(to_tsvector('russian', content), 'D')"
)
EMBEDDING_DIMENSIONS = 1536
TABLES = ("knowledge_documents", "knowledge_chunks", "knowledge_faqs")


def _id() -> sa.Column[Any]:
    return sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False)


def _organization_id() -> sa.Column[Any]:
    return sa.Column(
        "organization_id",
        sa.UUID(),
        sa.ForeignKey("organizations.id", ondelete="CASCADE"),
        nullable=False,
    )


def _agent_id() -> sa.Column[Any]:
    return sa.Column("agent_id", sa.UUID(), sa.ForeignKey("agents.id", ondelete="CASCADE"))


def _timestamps() -> list[sa.Column[Any]]:
    return [
        sa.Column(name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)
        for name in ("created_at", "updated_at")
    ]


def _create_tables() -> None:
    op.create_table(
        "knowledge_documents",
        _id(),
        _organization_id(),
        _agent_id(),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("source_url", sa.String(2000)),
        sa.Column("content", sa.Text(), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_documents")),
        sa.CheckConstraint(
            "kind IN ('text', 'markdown', 'pdf', 'web')", name=op.f("ck_knowledge_documents_kind")
        ),
    )
    op.create_table(
        "knowledge_chunks",
        _id(),
        _organization_id(),
        sa.Column(
            "document_id",
            sa.UUID(),
            sa.ForeignKey("knowledge_documents.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("agent_id", sa.UUID()),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("heading", sa.String(500)),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column(
            "search_vector",
            postgresql.TSVECTOR(),
            sa.Computed(SEARCH_VECTOR, persisted=True),
            nullable=False,
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_chunks")),
    )
    op.create_table(
        "knowledge_faqs",
        _id(),
        _organization_id(),
        _agent_id(),
        sa.Column("question", sa.Text(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_knowledge_faqs")),
    )


def _create_indexes() -> None:
    for table in TABLES:
        op.create_index(op.f(f"ix_{table}_organization_id"), table, ["organization_id"])
    for table in ("knowledge_documents", "knowledge_faqs"):
        op.create_index(op.f(f"ix_{table}_agent_id"), table, ["agent_id"])
        # The API lists them newest first, a page at a time (kit.pagination).
        op.create_index(
            op.f(f"ix_{table}_org_created_at"), table, ["organization_id", "created_at", "id"]
        )
    op.create_index(op.f("ix_knowledge_chunks_document_id"), "knowledge_chunks", ["document_id"])
    op.create_index(
        op.f("ix_knowledge_chunks_search_vector"),
        "knowledge_chunks",
        ["search_vector"],
        postgresql_using="gin",
    )


def _pgvector_available() -> bool:
    available = op.get_bind().scalar(
        sa.text("SELECT EXISTS (SELECT FROM pg_available_extensions WHERE name = 'vector')")
    )
    return bool(available)


def _add_vectors() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    op.execute(f"ALTER TABLE knowledge_chunks ADD COLUMN embedding vector({EMBEDDING_DIMENSIONS})")
    op.execute(
        "CREATE INDEX ix_knowledge_chunks_embedding ON knowledge_chunks "
        "USING hnsw (embedding vector_cosine_ops)"
    )


def upgrade() -> None:
    _create_tables()
    _create_indexes()
    for table in TABLES:
        protect_tenant_table(table)
    keep_updated_at("knowledge_documents")
    keep_updated_at("knowledge_faqs")
    if _pgvector_available():
        _add_vectors()


def downgrade() -> None:
    # pgvector stays: other tables of this database may have come to use it.
    for table in TABLES:
        unprotect_tenant_table(table)
    for table in reversed(TABLES):
        op.drop_table(table)
