"""Agent settings and versions: every save a version, one published.

The agent's new settings columns (see agent.models.Agent); agent_versions; the published
version on the agent and the answering version on each assistant message. Each existing
agent gets version 1 (its current settings) and has it published.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 16:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from agent_platform.db.migrations.tenancy import protect_tenant_table, unprotect_tenant_table

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

JSON_LIST = sa.text("'[]'::jsonb")
# (column, default) of the structured settings; a `{}` handoff takes the schema's defaults.
JSON_SETTINGS = (
    ("fallback_models", JSON_LIST),
    ("stop_words", JSON_LIST),
    ("handoff", sa.text("'{}'::jsonb")),
    ("tools", JSON_LIST),
    ("active_stages", JSON_LIST),
)
CHECKS = {
    "debounce_seconds": "debounce_seconds BETWEEN 0 AND 300",
    "takeover_pause_minutes": "takeover_pause_minutes >= 0",
    "max_tokens": "max_tokens >= 1",
    "max_replies_per_conversation_per_day": "max_replies_per_conversation_per_day >= 1",
}


def _add_settings_columns() -> None:
    op.add_column("agents", sa.Column("description", sa.Text(), server_default="", nullable=False))
    for name, default in JSON_SETTINGS:
        op.add_column(
            "agents", sa.Column(name, postgresql.JSONB(), server_default=default, nullable=False)
        )
    op.add_column("agents", sa.Column("max_tokens", sa.Integer(), nullable=True))
    op.add_column(
        "agents", sa.Column("language", sa.String(35), server_default="auto", nullable=False)
    )
    op.add_column("agents", sa.Column("tone", sa.String(200), server_default="", nullable=False))
    op.add_column("agents", sa.Column("working_hours", postgresql.JSONB(), nullable=True))
    op.add_column(
        "agents",
        sa.Column("takeover_pause_minutes", sa.Integer(), server_default="60", nullable=False),
    )
    op.add_column(
        "agents", sa.Column("debounce_seconds", sa.Integer(), server_default="0", nullable=False)
    )
    op.add_column(
        "agents", sa.Column("max_replies_per_conversation_per_day", sa.Integer(), nullable=True)
    )
    for name, condition in CHECKS.items():
        op.create_check_constraint(op.f(f"ck_agents_{name}"), "agents", condition)
    # Exactly what the API took: a float, not a number rounded to two places.
    op.alter_column(
        "agents",
        "temperature",
        type_=sa.Float(),
        existing_type=sa.Numeric(3, 2),
        existing_server_default="0.3",
        existing_nullable=False,
    )
    op.drop_constraint(op.f("ck_agents_status"), "agents", type_="check")
    op.create_check_constraint(
        op.f("ck_agents_status"), "agents", "status IN ('draft', 'active', 'paused', 'archived')"
    )


def _create_versions() -> None:
    op.create_table(
        "agent_versions",
        sa.Column("agent_id", sa.UUID(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("settings", postgresql.JSONB(), nullable=False),
        sa.Column("note", sa.String(500), nullable=True),
        sa.Column("created_by", sa.String(100), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("clock_timestamp()"),
            nullable=False,
        ),
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.CheckConstraint("number >= 1", name=op.f("ck_agent_versions_number")),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_versions_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_agent_versions_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agent_versions")),
        sa.UniqueConstraint("agent_id", "number", name=op.f("uq_agent_versions_agent_id")),
    )
    op.create_index(
        op.f("ix_agent_versions_organization_id"),
        "agent_versions",
        ["organization_id"],
        unique=False,
    )
    protect_tenant_table("agent_versions")
    op.add_column("agents", sa.Column("published_version_id", sa.UUID(), nullable=True))
    op.add_column("agents", sa.Column("published_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("agents", sa.Column("published_by", sa.String(100), nullable=True))
    op.create_foreign_key(
        op.f("fk_agents_published_version_id_agent_versions"),
        "agents",
        "agent_versions",
        ["published_version_id"],
        ["id"],
        ondelete="SET NULL",
    )
    op.add_column("messages", sa.Column("agent_version_id", sa.UUID(), nullable=True))
    op.create_foreign_key(
        op.f("fk_messages_agent_version_id_agent_versions"),
        "messages",
        "agent_versions",
        ["agent_version_id"],
        ["id"],
        ondelete="SET NULL",
    )


def _publish_existing_agents() -> None:
    # The snapshot's keys are agent.schemas.AgentSettings's.
    op.execute(
        """
        INSERT INTO agent_versions (organization_id, agent_id, number, settings, note)
        SELECT organization_id, id, 1,
               jsonb_build_object(
                   'name', name, 'description', description, 'instructions', instructions,
                   'model', model, 'fallback_models', fallback_models,
                   'temperature', temperature, 'max_tokens', max_tokens,
                   'language', language, 'tone', tone, 'working_hours', working_hours,
                   'stop_words', stop_words, 'handoff', handoff,
                   'takeover_pause_minutes', takeover_pause_minutes,
                   'debounce_seconds', debounce_seconds,
                   'max_replies_per_conversation_per_day', max_replies_per_conversation_per_day,
                   'tools', tools, 'active_stages', active_stages
               ),
               'The settings the agent had when versions began'
        FROM agents
        """
    )
    op.execute(
        """
        UPDATE agents SET published_version_id = agent_versions.id, published_at = now()
        FROM agent_versions WHERE agent_versions.agent_id = agents.id
        """
    )


def upgrade() -> None:
    _add_settings_columns()
    _create_versions()
    _publish_existing_agents()


def downgrade() -> None:
    op.drop_constraint(
        op.f("fk_messages_agent_version_id_agent_versions"), "messages", type_="foreignkey"
    )
    op.drop_column("messages", "agent_version_id")
    op.drop_constraint(
        op.f("fk_agents_published_version_id_agent_versions"), "agents", type_="foreignkey"
    )
    for column in ("published_by", "published_at", "published_version_id"):
        op.drop_column("agents", column)
    unprotect_tenant_table("agent_versions")
    op.drop_index(op.f("ix_agent_versions_organization_id"), table_name="agent_versions")
    op.drop_table("agent_versions")
    # Archived agents existed only to be kept; before this revision the nearest is paused.
    op.execute("UPDATE agents SET status = 'paused' WHERE status = 'archived'")
    op.drop_constraint(op.f("ck_agents_status"), "agents", type_="check")
    op.create_check_constraint(
        op.f("ck_agents_status"), "agents", "status IN ('draft', 'active', 'paused')"
    )
    op.alter_column(
        "agents",
        "temperature",
        type_=sa.Numeric(3, 2),
        existing_type=sa.Float(),
        existing_server_default="0.3",
        existing_nullable=False,
    )
    for name in CHECKS:
        op.drop_constraint(op.f(f"ck_agents_{name}"), "agents", type_="check")
    for column in (
        "max_replies_per_conversation_per_day",
        "debounce_seconds",
        "takeover_pause_minutes",
        "working_hours",
        "tone",
        "language",
        "max_tokens",
        *(name for name, _ in JSON_SETTINGS),
        "description",
    ):
        op.drop_column("agents", column)
