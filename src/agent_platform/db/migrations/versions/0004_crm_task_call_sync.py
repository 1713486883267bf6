"""CRM tasks and calls pushed to Kommo: what each mirrors and whether it reached Kommo.

Tasks: the entity they are set on (any type, not only leads), where they came from (platform
or Kommo), completion, their sync state, Kommo's last change, one row per Kommo task.
Calls: Kommo's `uniq` (the idempotency key), call source, responsible user, the card Kommo
filed the call on, the sync state and the attempts that may have reached Kommo; Kommo's call
id as a number.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 16:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_SYNC_STATUSES = "sync_status IN ('pending', 'synced', 'failed')"


def _sync_columns(table: str) -> None:
    op.add_column(
        table,
        sa.Column("sync_status", sa.String(16), server_default="pending", nullable=False),
    )
    op.add_column(table, sa.Column("sync_error", sa.Text(), nullable=True))
    op.create_check_constraint(op.f(f"ck_{table}_sync_status"), table, _SYNC_STATUSES)
    # Rows from before this revision that carry Kommo's id did reach Kommo.
    rows = sa.table(table, sa.column("sync_status"), sa.column("external_id"))
    op.execute(rows.update().where(rows.c.external_id.is_not(None)).values(sync_status="synced"))


def _upgrade_tasks() -> None:
    op.drop_index("ix_crm_tasks_org_lead", table_name="crm_tasks")
    op.alter_column("crm_tasks", "lead_id", new_column_name="entity_id")
    op.add_column("crm_tasks", sa.Column("entity_type", sa.String(16), nullable=True))
    op.execute("UPDATE crm_tasks SET entity_type = 'leads' WHERE entity_id IS NOT NULL")
    op.add_column(
        "crm_tasks",
        sa.Column("source", sa.String(16), server_default="platform", nullable=False),
    )
    op.add_column("crm_tasks", sa.Column("completed_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("crm_tasks", sa.Column("result_text", sa.Text(), nullable=True))
    op.add_column(
        "crm_tasks", sa.Column("kommo_updated_at", sa.DateTime(timezone=True), nullable=True)
    )
    _sync_columns("crm_tasks")
    op.create_check_constraint(
        op.f("ck_crm_tasks_source"), "crm_tasks", "source IN ('platform', 'kommo')"
    )
    op.create_check_constraint(
        op.f("ck_crm_tasks_status"), "crm_tasks", "status IN ('open', 'completed', 'deleted')"
    )
    op.create_index(
        "ix_crm_tasks_org_entity", "crm_tasks", ["organization_id", "entity_type", "entity_id"]
    )
    op.create_index(
        "ix_crm_tasks_org_created_at_id", "crm_tasks", ["organization_id", "created_at", "id"]
    )
    op.create_index(
        "uq_crm_tasks_connection_external_id",
        "crm_tasks",
        ["connection_id", "external_id"],
        unique=True,
        postgresql_where=sa.text("external_id IS NOT NULL"),
    )


def _upgrade_calls() -> None:
    op.alter_column(
        "crm_calls",
        "external_id",
        type_=sa.BigInteger(),
        postgresql_using="external_id::bigint",
    )
    op.add_column("crm_calls", sa.Column("uniq", sa.String(255), nullable=True))
    op.execute("UPDATE crm_calls SET uniq = coalesce(external_id::text, id::text)")
    op.alter_column("crm_calls", "uniq", nullable=False)
    op.create_unique_constraint(
        "uq_crm_calls_connection_uniq", "crm_calls", ["connection_id", "uniq"]
    )
    # Calls logged before this revision did not keep their source: they get an empty one.
    op.add_column(
        "crm_calls", sa.Column("source", sa.String(255), server_default="", nullable=False)
    )
    op.alter_column("crm_calls", "source", server_default=None)
    op.add_column("crm_calls", sa.Column("responsible_user_id", sa.BigInteger(), nullable=True))
    op.add_column("crm_calls", sa.Column("entity_type", sa.String(16), nullable=True))
    op.add_column("crm_calls", sa.Column("entity_id", sa.BigInteger(), nullable=True))
    op.add_column(
        "crm_calls",
        sa.Column("push_attempts", sa.Integer(), server_default="0", nullable=False),
    )
    _sync_columns("crm_calls")


def upgrade() -> None:
    _upgrade_tasks()
    _upgrade_calls()


def downgrade() -> None:
    op.drop_constraint(op.f("ck_crm_calls_sync_status"), "crm_calls", type_="check")
    for column in (
        "sync_error",
        "sync_status",
        "push_attempts",
        "entity_id",
        "entity_type",
        "responsible_user_id",
        "source",
    ):
        op.drop_column("crm_calls", column)
    op.drop_constraint("uq_crm_calls_connection_uniq", "crm_calls", type_="unique")
    op.drop_column("crm_calls", "uniq")
    op.alter_column("crm_calls", "external_id", type_=sa.String(255))

    op.drop_index("uq_crm_tasks_connection_external_id", table_name="crm_tasks")
    op.drop_index("ix_crm_tasks_org_created_at_id", table_name="crm_tasks")
    op.drop_index("ix_crm_tasks_org_entity", table_name="crm_tasks")
    for constraint in ("ck_crm_tasks_status", "ck_crm_tasks_source", "ck_crm_tasks_sync_status"):
        op.drop_constraint(op.f(constraint), "crm_tasks", type_="check")
    # Tasks on anything but a lead had no place before this revision.
    op.execute("UPDATE crm_tasks SET entity_id = NULL WHERE entity_type IS DISTINCT FROM 'leads'")
    for column in (
        "sync_error",
        "sync_status",
        "kommo_updated_at",
        "result_text",
        "completed_at",
        "source",
        "entity_type",
    ):
        op.drop_column("crm_tasks", column)
    op.alter_column("crm_tasks", "entity_id", new_column_name="lead_id")
    op.create_index("ix_crm_tasks_org_lead", "crm_tasks", ["organization_id", "lead_id"])
