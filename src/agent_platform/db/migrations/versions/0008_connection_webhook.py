"""Kommo connections: our webhook subscription in the account (where, since when, or why not).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "crm_connections", sa.Column("webhook_destination", sa.String(1000), nullable=True)
    )
    op.add_column(
        "crm_connections",
        sa.Column("webhook_subscribed_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column("crm_connections", sa.Column("webhook_error", sa.Text(), nullable=True))


def downgrade() -> None:
    op.drop_column("crm_connections", "webhook_error")
    op.drop_column("crm_connections", "webhook_subscribed_at")
    op.drop_column("crm_connections", "webhook_destination")
