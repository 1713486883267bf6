"""What every migration that adds an organization's table does to it: row-level security for
the tenant role and the `updated_at` trigger (both created by revision 0001)."""

from __future__ import annotations

from alembic import op

from agent_platform.db.session import TENANT_ROLE


def protect_tenant_table(table: str) -> None:
    """Rows of `table` are visible and writable only inside their organization's scope."""
    op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {TENANT_ROLE}")
    op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    # missing_ok=true: with no organization set, current_setting is NULL and no row matches.
    op.execute(
        f"CREATE POLICY {table}_tenant_isolation ON {table} TO {TENANT_ROLE} "
        "USING (organization_id = current_setting('app.organization_id', true)::uuid) "
        "WITH CHECK (organization_id = current_setting('app.organization_id', true)::uuid)"
    )


def unprotect_tenant_table(table: str) -> None:
    op.execute(f"DROP POLICY IF EXISTS {table}_tenant_isolation ON {table}")


def keep_updated_at(table: str) -> None:
    op.execute(
        f"CREATE TRIGGER {table}_set_updated_at BEFORE UPDATE ON {table} "
        "FOR EACH ROW EXECUTE FUNCTION set_updated_at()"
    )
