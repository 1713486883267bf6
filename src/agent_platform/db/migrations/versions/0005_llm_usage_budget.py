"""LLM calls recorded with tokens and cost; each organization's monthly budget.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02 16:10:00
"""

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa
from alembic import op

from agent_platform.db.migrations.tenancy import (
    keep_updated_at,
    protect_tenant_table,
    unprotect_tenant_table,
)

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("llm_calls", "llm_budgets")


def _timestamps() -> list[sa.Column[datetime]]:
    return [
        sa.Column(name, sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False)
        for name in ("created_at", "updated_at")
    ]


def upgrade() -> None:
    op.create_table(
        "llm_calls",
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("agent_id", sa.UUID(), nullable=True),
        sa.Column("conversation_id", sa.UUID(), nullable=True),
        sa.Column("model_requested", sa.String(length=200), nullable=False),
        sa.Column("model_used", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tokens_in", sa.Integer(), nullable=True),
        sa.Column("tokens_out", sa.Integer(), nullable=True),
        sa.Column("cost_usd", sa.Numeric(precision=16, scale=8), nullable=True),
        sa.Column("cost_source", sa.String(length=16), nullable=True),
        sa.Column("latency_ms", sa.Integer(), nullable=True),
        sa.Column("error_kind", sa.String(length=32), nullable=True),
        *_timestamps(),
        sa.CheckConstraint(
            "status IN ('ok', 'error', 'budget_blocked')", name=op.f("ck_llm_calls_status")
        ),
        sa.CheckConstraint(
            "cost_source IN ('provider', 'price_table')", name=op.f("ck_llm_calls_cost_source")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_llm_calls_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_llm_calls_agent_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name=op.f("fk_llm_calls_conversation_id_conversations"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_llm_calls")),
    )
    op.create_index(
        op.f("ix_llm_calls_organization_id"), "llm_calls", ["organization_id"], unique=False
    )
    op.create_index(
        "ix_llm_calls_org_created_at",
        "llm_calls",
        ["organization_id", "created_at"],
        unique=False,
        postgresql_include=["cost_usd"],
    )
    op.create_table(
        "llm_budgets",
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column("monthly_limit_usd", sa.Numeric(precision=12, scale=2), nullable=True),
        sa.Column(
            "warning_ratio",
            sa.Numeric(precision=3, scale=2),
            server_default="0.80",
            nullable=False,
        ),
        sa.Column("warned_month", sa.Date(), nullable=True),
        *_timestamps(),
        sa.CheckConstraint("monthly_limit_usd >= 0", name=op.f("ck_llm_budgets_monthly_limit_usd")),
        sa.CheckConstraint(
            "warning_ratio > 0 AND warning_ratio <= 1", name=op.f("ck_llm_budgets_warning_ratio")
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_llm_budgets_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("organization_id", name=op.f("pk_llm_budgets")),
    )
    for table in TABLES:
        keep_updated_at(table)
        protect_tenant_table(table)


def downgrade() -> None:
    for table in TABLES:
        unprotect_tenant_table(table)
    op.drop_table("llm_budgets")
    op.drop_index("ix_llm_calls_org_created_at", table_name="llm_calls")
    op.drop_index(op.f("ix_llm_calls_organization_id"), table_name="llm_calls")
    op.drop_table("llm_calls")
