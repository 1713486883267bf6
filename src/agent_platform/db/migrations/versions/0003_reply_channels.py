"""Reply channels: each connection's channel (note, chats, salesbot) and its Chats API settings;
Kommo's string ids of sent replies.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 15:42:45.068136
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "crm_connections",
        sa.Column("reply_channel", sa.String(length=16), server_default="note", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_crm_connections_reply_channel"),
        "crm_connections",
        "reply_channel IN ('note', 'chats', 'salesbot')",
    )
    op.add_column("crm_connections", sa.Column("chats_scope_id", sa.String(255), nullable=True))
    op.add_column("crm_connections", sa.Column("chats_secret_encrypted", sa.Text(), nullable=True))
    op.add_column("crm_connections", sa.Column("chats_bot_id", sa.String(255), nullable=True))
    op.add_column("crm_connections", sa.Column("chats_api_url", sa.String(500), nullable=True))
    op.add_column("crm_deliveries", sa.Column("external_ref", sa.String(255), nullable=True))


def downgrade() -> None:
    op.drop_column("crm_deliveries", "external_ref")
    op.drop_column("crm_connections", "chats_api_url")
    op.drop_column("crm_connections", "chats_bot_id")
    op.drop_column("crm_connections", "chats_secret_encrypted")
    op.drop_column("crm_connections", "chats_scope_id")
    op.drop_constraint(op.f("ck_crm_connections_reply_channel"), "crm_connections", type_="check")
    op.drop_column("crm_connections", "reply_channel")
