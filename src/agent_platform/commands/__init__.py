"""Groups of the `agent-platform` command: operations (queue, preflight, secrets, backup, dr)."""
