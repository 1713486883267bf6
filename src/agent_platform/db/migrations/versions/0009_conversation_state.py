"""Conversations: what the reply gate needs to remember (stop, handoff, manager takeover,
out-of-hours notice, errors), a summary of older turns, conversations of the chat API (no
CRM connection), and tool calls on messages.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 17:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_MOMENTS = (
    "stopped_at",
    "handed_off_at",
    "agent_paused_until",
    "last_manager_message_at",
    "out_of_hours_message_sent_at",
)


def upgrade() -> None:
    op.alter_column("conversations", "connection_id", nullable=True)
    op.add_column(
        "conversations",
        sa.Column("channel", sa.String(16), server_default="kommo", nullable=False),
    )
    op.create_check_constraint(
        op.f("ck_conversations_channel"), "conversations", "channel IN ('kommo', 'api')"
    )
    op.create_check_constraint(
        op.f("ck_conversations_connection_of_channel"),
        "conversations",
        "(channel = 'kommo') = (connection_id IS NOT NULL)",
    )
    for column in _MOMENTS:
        op.add_column("conversations", sa.Column(column, sa.DateTime(timezone=True), nullable=True))
    op.add_column("conversations", sa.Column("stop_reason", sa.Text(), nullable=True))
    op.add_column("conversations", sa.Column("handoff_reason", sa.Text(), nullable=True))
    op.add_column(
        "conversations",
        sa.Column("consecutive_errors", sa.Integer(), server_default="0", nullable=False),
    )
    op.add_column("conversations", sa.Column("summary", sa.Text(), nullable=True))
    op.add_column(
        "conversations",
        sa.Column("summarized_until", sa.DateTime(timezone=True), nullable=True),
    )
    op.add_column(
        "messages",
        sa.Column("tool_calls", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column("messages", sa.Column("tool_call_id", sa.String(100), nullable=True))


def downgrade() -> None:
    op.drop_column("messages", "tool_call_id")
    op.drop_column("messages", "tool_calls")
    for column in (*_MOMENTS, "stop_reason", "handoff_reason", "consecutive_errors"):
        op.drop_column("conversations", column)
    op.drop_column("conversations", "summarized_until")
    op.drop_column("conversations", "summary")
    op.drop_constraint(
        op.f("ck_conversations_connection_of_channel"), "conversations", type_="check"
    )
    op.drop_constraint(op.f("ck_conversations_channel"), "conversations", type_="check")
    op.drop_column("conversations", "channel")
    op.execute("DELETE FROM conversations WHERE connection_id IS NULL")
    op.alter_column("conversations", "connection_id", nullable=False)
