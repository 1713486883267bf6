"""Automation: rules, triggers, sequences and enrollments, the run log, lead snapshots and the
changes our own actions made (loop protection).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 07:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from agent_platform.db.migrations.tenancy import (
    keep_updated_at,
    protect_tenant_table,
    unprotect_tenant_table,
)

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "automation_rules",
    "automation_sequences",
    "automation_triggers",
    "automation_enrollments",
    "automation_expected_echoes",
    "automation_lead_snapshots",
    "automation_runs",
)


def upgrade() -> None:
    op.create_table(
        "automation_rules",
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), server_default="", nullable=False),
        sa.Column("conditions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_automation_rules_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_rules")),
    )
    op.create_index(
        op.f("ix_automation_rules_organization_id"),
        "automation_rules",
        ["organization_id"],
        unique=False,
    )
    op.create_table(
        "automation_sequences",
        sa.Column("agent_id", sa.UUID(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("steps", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("stop_on", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("version", sa.Integer(), server_default="1", nullable=False),
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_automation_sequences_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_automation_sequences_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_sequences")),
    )
    op.create_index(
        op.f("ix_automation_sequences_agent_id"), "automation_sequences", ["agent_id"], unique=False
    )
    op.create_index(
        op.f("ix_automation_sequences_organization_id"),
        "automation_sequences",
        ["organization_id"],
        unique=False,
    )
    op.create_table(
        "automation_triggers",
        sa.Column("agent_id", sa.UUID(), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("event", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("conditions", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("actions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("priority", sa.Integer(), server_default="0", nullable=False),
        sa.Column("enabled", sa.Boolean(), server_default="true", nullable=False),
        sa.Column("max_runs_per_lead_per_day", sa.Integer(), nullable=True),
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_automation_triggers_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_automation_triggers_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_triggers")),
    )
    op.create_index(
        op.f("ix_automation_triggers_agent_id"), "automation_triggers", ["agent_id"], unique=False
    )
    op.create_index(
        "ix_automation_triggers_lookup",
        "automation_triggers",
        ["organization_id", "event_type", "enabled"],
        unique=False,
    )
    op.create_index(
        op.f("ix_automation_triggers_organization_id"),
        "automation_triggers",
        ["organization_id"],
        unique=False,
    )
    op.create_table(
        "automation_enrollments",
        sa.Column("sequence_id", sa.UUID(), nullable=False),
        sa.Column("sequence_version", sa.Integer(), nullable=False),
        sa.Column("steps", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("stop_on", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("connection_id", sa.UUID(), nullable=False),
        sa.Column("lead_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("current_step", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_step_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("next_job_id", sa.BigInteger(), nullable=True),
        sa.Column("stop_reason", sa.Text(), nullable=True),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "origin", postgresql.JSONB(astext_type=sa.Text()), server_default="{}", nullable=False
        ),
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('active', 'paused', 'completed', 'stopped', 'failed')",
            name=op.f("ck_automation_enrollments_status"),
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["crm_connections.id"],
            name=op.f("fk_automation_enrollments_connection_id_crm_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_automation_enrollments_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sequence_id"],
            ["automation_sequences.id"],
            name=op.f("fk_automation_enrollments_sequence_id_automation_sequences"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_enrollments")),
    )
    op.create_index(
        "ix_automation_enrollments_lead",
        "automation_enrollments",
        ["organization_id", "connection_id", "lead_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_automation_enrollments_organization_id"),
        "automation_enrollments",
        ["organization_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_automation_enrollments_sequence_id"),
        "automation_enrollments",
        ["sequence_id"],
        unique=False,
    )
    op.create_index(
        "uq_automation_enrollments_open",
        "automation_enrollments",
        ["sequence_id", "connection_id", "lead_id"],
        unique=True,
        postgresql_where=sa.text("status IN ('active', 'paused')"),
    )
    op.create_table(
        "automation_expected_echoes",
        sa.Column("connection_id", sa.UUID(), nullable=False),
        sa.Column("lead_id", sa.BigInteger(), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("match", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("origin", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["crm_connections.id"],
            name=op.f("fk_automation_expected_echoes_connection_id_crm_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_automation_expected_echoes_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_expected_echoes")),
    )
    op.create_index(
        "ix_automation_expected_echoes_lead",
        "automation_expected_echoes",
        ["connection_id", "lead_id", "event_type"],
        unique=False,
    )
    op.create_index(
        op.f("ix_automation_expected_echoes_organization_id"),
        "automation_expected_echoes",
        ["organization_id"],
        unique=False,
    )
    op.create_table(
        "automation_lead_snapshots",
        sa.Column("connection_id", sa.UUID(), nullable=False),
        sa.Column("lead_id", sa.BigInteger(), nullable=False),
        sa.Column("facts", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["crm_connections.id"],
            name=op.f("fk_automation_lead_snapshots_connection_id_crm_connections"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_automation_lead_snapshots_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_lead_snapshots")),
    )
    op.create_index(
        op.f("ix_automation_lead_snapshots_organization_id"),
        "automation_lead_snapshots",
        ["organization_id"],
        unique=False,
    )
    op.create_index(
        "uq_automation_lead_snapshots_lead",
        "automation_lead_snapshots",
        ["connection_id", "lead_id"],
        unique=True,
    )
    op.create_table(
        "automation_runs",
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("trigger_id", sa.UUID(), nullable=True),
        sa.Column("sequence_id", sa.UUID(), nullable=True),
        sa.Column("enrollment_id", sa.UUID(), nullable=True),
        sa.Column("rule_id", sa.UUID(), nullable=True),
        sa.Column("connection_id", sa.UUID(), nullable=True),
        sa.Column("lead_id", sa.BigInteger(), nullable=True),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("event", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("matched", sa.Boolean(), nullable=False),
        sa.Column("trace", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        sa.Column("actions", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("results", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("next_action", sa.Integer(), server_default="0", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("chain_depth", sa.Integer(), server_default="0", nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=True),
        sa.Column("resume_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=True),
        sa.Column("id", sa.UUID(), server_default=sa.text("gen_random_uuid()"), nullable=False),
        sa.Column("organization_id", sa.UUID(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "kind IN ('trigger', 'sequence_step', 'rule')", name=op.f("ck_automation_runs_kind")
        ),
        sa.CheckConstraint(
            "status IN ('skipped', 'running', 'waiting', 'succeeded', 'failed')",
            name=op.f("ck_automation_runs_status"),
        ),
        sa.ForeignKeyConstraint(
            ["connection_id"],
            ["crm_connections.id"],
            name=op.f("fk_automation_runs_connection_id_crm_connections"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["enrollment_id"],
            ["automation_enrollments.id"],
            name=op.f("fk_automation_runs_enrollment_id_automation_enrollments"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_automation_runs_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["rule_id"],
            ["automation_rules.id"],
            name=op.f("fk_automation_runs_rule_id_automation_rules"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["sequence_id"],
            ["automation_sequences.id"],
            name=op.f("fk_automation_runs_sequence_id_automation_sequences"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["trigger_id"],
            ["automation_triggers.id"],
            name=op.f("fk_automation_runs_trigger_id_automation_triggers"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_automation_runs")),
    )
    op.create_index(
        "ix_automation_runs_listing",
        "automation_runs",
        ["organization_id", "created_at"],
        unique=False,
    )
    op.create_index(
        op.f("ix_automation_runs_organization_id"),
        "automation_runs",
        ["organization_id"],
        unique=False,
    )
    op.create_index(
        op.f("ix_automation_runs_sequence_id"), "automation_runs", ["sequence_id"], unique=False
    )
    op.create_index(
        "ix_automation_runs_trigger_lead",
        "automation_runs",
        ["trigger_id", "lead_id", "created_at"],
        unique=False,
    )
    op.create_index("uq_automation_runs_dedupe_key", "automation_runs", ["dedupe_key"], unique=True)
    for table in TABLES:
        protect_tenant_table(table)
        keep_updated_at(table)


def downgrade() -> None:
    for table in TABLES:
        unprotect_tenant_table(table)
    op.drop_index("uq_automation_runs_dedupe_key", table_name="automation_runs")
    op.drop_index("ix_automation_runs_trigger_lead", table_name="automation_runs")
    op.drop_index(op.f("ix_automation_runs_sequence_id"), table_name="automation_runs")
    op.drop_index(op.f("ix_automation_runs_organization_id"), table_name="automation_runs")
    op.drop_index("ix_automation_runs_listing", table_name="automation_runs")
    op.drop_table("automation_runs")
    op.drop_index("uq_automation_lead_snapshots_lead", table_name="automation_lead_snapshots")
    op.drop_index(
        op.f("ix_automation_lead_snapshots_organization_id"), table_name="automation_lead_snapshots"
    )
    op.drop_table("automation_lead_snapshots")
    op.drop_index(
        op.f("ix_automation_expected_echoes_organization_id"),
        table_name="automation_expected_echoes",
    )
    op.drop_index("ix_automation_expected_echoes_lead", table_name="automation_expected_echoes")
    op.drop_table("automation_expected_echoes")
    op.drop_index(
        "uq_automation_enrollments_open",
        table_name="automation_enrollments",
        postgresql_where=sa.text("status IN ('active', 'paused')"),
    )
    op.drop_index(
        op.f("ix_automation_enrollments_sequence_id"), table_name="automation_enrollments"
    )
    op.drop_index(
        op.f("ix_automation_enrollments_organization_id"), table_name="automation_enrollments"
    )
    op.drop_index("ix_automation_enrollments_lead", table_name="automation_enrollments")
    op.drop_table("automation_enrollments")
    op.drop_index(op.f("ix_automation_triggers_organization_id"), table_name="automation_triggers")
    op.drop_index("ix_automation_triggers_lookup", table_name="automation_triggers")
    op.drop_index(op.f("ix_automation_triggers_agent_id"), table_name="automation_triggers")
    op.drop_table("automation_triggers")
    op.drop_index(
        op.f("ix_automation_sequences_organization_id"), table_name="automation_sequences"
    )
    op.drop_index(op.f("ix_automation_sequences_agent_id"), table_name="automation_sequences")
    op.drop_table("automation_sequences")
    op.drop_index(op.f("ix_automation_rules_organization_id"), table_name="automation_rules")
    op.drop_table("automation_rules")
