"""Kommo connections: a `blocked` status, why and since when a status holds, one per account.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 15:38:29.448590
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("crm_connections", sa.Column("status_reason", sa.Text(), nullable=True))
    op.add_column(
        "crm_connections",
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.drop_constraint(op.f("ck_crm_connections_status"), "crm_connections", type_="check")
    op.create_check_constraint(
        op.f("ck_crm_connections_status"),
        "crm_connections",
        "status IN ('active', 'needs_reauth', 'disabled', 'blocked')",
    )
    op.create_index(
        "uq_crm_connections_organization_account",
        "crm_connections",
        ["organization_id", "account_id"],
        unique=True,
        postgresql_where=sa.text("account_id IS NOT NULL"),
    )


def downgrade() -> None:
    op.drop_index("uq_crm_connections_organization_account", table_name="crm_connections")
    op.execute("UPDATE crm_connections SET status = 'disabled' WHERE status = 'blocked'")
    op.drop_constraint(op.f("ck_crm_connections_status"), "crm_connections", type_="check")
    op.create_check_constraint(
        op.f("ck_crm_connections_status"),
        "crm_connections",
        "status IN ('active', 'needs_reauth', 'disabled')",
    )
    op.drop_column("crm_connections", "status_changed_at")
    op.drop_column("crm_connections", "status_reason")
