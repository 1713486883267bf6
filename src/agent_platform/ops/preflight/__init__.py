"""Preflight: the checks a deployment must pass before it goes live (`agent-platform preflight`).

configuration: environment variables per role, pure; reachability: database, migrations,
Redis, the LLM endpoint, running instances; source_tree: files, Dockerfile, secrets, lint
and types of a source checkout; run: all of them in order, into one report.
"""
