"""Backup and verified-restore time and size for 10k, 100k and 1M messages of conversation data.

    .venv/bin/python bench/backup.py [--database-url postgresql://postgres@127.0.0.1:5432/test]
        [--sizes 10000 100000 1000000]

Each size gets a database of its own (on the given server, else an embedded PostgreSQL),
migrated to head, filled with one organization, a conversation per ten messages and the
messages (about 200 characters each), then `agent-platform backup`'s own create_backup and
verify_backup (a restore into a scratch database with the row counts compared). Results go to
bench/results/backup-<UTC time>.json with the machine's details.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from alembic import command
from harness import bench_database
from results_file import RESULTS_DIR, machine_details, write_results

from agent_platform.db.migrate import alembic_config
from agent_platform.db.urls import libpq_url
from agent_platform.ops.backups import create_backup, verify_backup

MESSAGES_PER_CONVERSATION = 10

_FILL = """
WITH organization AS (
    INSERT INTO organizations (id, name, slug)
    VALUES (gen_random_uuid(), 'Bench', 'bench') RETURNING id
), conversations AS (
    INSERT INTO conversations (id, organization_id, channel, entity_type, entity_id)
    SELECT gen_random_uuid(), organization.id, 'api', 'lead', n
      FROM organization, generate_series(1, %(conversations)s) AS n
    RETURNING id, organization_id
)
INSERT INTO messages (id, organization_id, conversation_id, role, content)
SELECT gen_random_uuid(), c.organization_id, c.id,
       CASE WHEN m %% 2 = 0 THEN 'assistant' ELSE 'user' END,
       repeat(md5(c.id::text || m::text), 6)
  FROM conversations c, generate_series(1, %(per_conversation)s) AS m
"""


def measure(server_database_url: str, messages: int) -> dict[str, Any]:
    with bench_database(server_database_url, f"ap_bench_backup_{messages}") as (url, _):
        command.upgrade(alembic_config(url), "head")
        started = time.perf_counter()
        with psycopg.connect(libpq_url(url)) as connection:
            connection.execute(
                _FILL,
                {
                    "conversations": messages // MESSAGES_PER_CONVERSATION,
                    "per_conversation": MESSAGES_PER_CONVERSATION,
                },
            )
        fill_seconds = time.perf_counter() - started
        with tempfile.TemporaryDirectory(prefix="ap-bench-backups-") as directory:
            manifest = create_backup(url, Path(directory))
            report = verify_backup(url, Path(directory), manifest.id)
        if not report.ok:
            raise SystemExit(f"verification failed at {messages} messages: {report.problems}")
        return {
            "messages": manifest.row_counts.get("messages"),
            "conversations": manifest.row_counts.get("conversations"),
            "fill_seconds": round(fill_seconds, 2),
            "backup_seconds": round(manifest.seconds, 2),
            "backup_bytes": manifest.size_bytes,
            "verified_restore_seconds": round(report.restore_seconds, 2),
            "server_version": manifest.server_version,
            "pg_dump": manifest.tool_version,
        }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", help="A server to create the databases on.")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    machine = machine_details()
    started_at = datetime.now(UTC)
    runs = []
    for size in args.sizes:
        run = measure(args.database_url, size)
        print(
            f"{size:>9} messages: backup {run['backup_seconds']} s, "
            f"{run['backup_bytes'] / 1e6:.1f} MB; verified restore "
            f"{run['verified_restore_seconds']} s",
            file=sys.stderr,
        )
        runs.append(run)
    path = write_results(
        "backup",
        {
            "benchmark": "backup",
            "started_at": started_at.isoformat(),
            "finished_at": datetime.now(UTC).isoformat(),
            "parameters": {"sizes": args.sizes, "database_server": args.database_url or "embedded"},
            "machine": machine,
            "runs": runs,
        },
        RESULTS_DIR,
    )
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
