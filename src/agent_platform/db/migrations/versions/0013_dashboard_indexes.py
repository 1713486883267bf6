"""Dashboard indexes: each of the dashboard's figures reads one organization's rows of a time
window, so each gets an index that starts with the organization and the time it counts by.

- messages (organization_id, created_at) INCLUDE (conversation_id, role): active
  conversations, leads by stage and response times read only these columns, index-only;
- crm_deliveries (organization_id, sent_at) WHERE status = 'sent': replies sent by day;
- inbox_events (organization_id, received_at): webhook events received and failed;
- conversations (organization_id, handed_off_at): handoffs.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_messages_org_created_at"),
        "messages",
        ["organization_id", "created_at"],
        unique=False,
        postgresql_include=["conversation_id", "role"],
    )
    op.create_index(
        op.f("ix_crm_deliveries_org_sent_at"),
        "crm_deliveries",
        ["organization_id", "sent_at"],
        unique=False,
        postgresql_where=sa.text("status = 'sent'"),
    )
    op.create_index(
        op.f("ix_inbox_events_org_received_at"),
        "inbox_events",
        ["organization_id", "received_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_conversations_org_handed_off_at"),
        "conversations",
        ["organization_id", "handed_off_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_conversations_org_handed_off_at"), table_name="conversations")
    op.drop_index(op.f("ix_inbox_events_org_received_at"), table_name="inbox_events")
    op.drop_index(op.f("ix_crm_deliveries_org_sent_at"), table_name="crm_deliveries")
    op.drop_index(op.f("ix_messages_org_created_at"), table_name="messages")
