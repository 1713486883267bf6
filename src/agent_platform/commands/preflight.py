"""`agent-platform preflight`: checks a deployment before it goes live."""

from __future__ import annotations


def preflight() -> None:
    """Check configuration, database, files and secrets before deploying."""
