"""A private PostgreSQL from the `pgserver` wheel, used when no DATABASE_URL is given."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


class EmbeddedPostgresError(RuntimeError):
    """pgserver could not be imported or started; the message says what to do instead."""


@dataclass
class EmbeddedPostgres:
    server: Any
    url: str

    def stop(self) -> None:
        self.server.cleanup()


def start_embedded_postgres(data_dir: Path) -> EmbeddedPostgres:
    """Start (or reuse, when already running) the cluster under `data_dir/postgres`."""
    hint = "set DATABASE_URL=postgresql://user:password@host:5432/dbname to use your own server"
    try:
        from pgserver.postgres_server import get_server
    except ImportError as exc:  # pragma: no cover - depends on the platform's wheels
        raise EmbeddedPostgresError(
            f"embedded PostgreSQL is not installed ({exc}); {hint}"
        ) from exc
    pgdata = (data_dir / "postgres").resolve()
    pgdata.mkdir(parents=True, exist_ok=True)
    try:
        # cleanup_mode="stop": the cluster stays on disk and stops when its last user exits.
        server = get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:
        raise EmbeddedPostgresError(f"embedded PostgreSQL did not start ({exc}); {hint}") from exc
    return EmbeddedPostgres(server=server, url=server.get_uri())
