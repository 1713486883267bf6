"""How `agent-platform secrets scan` shows its findings: a table, or one JSON document."""

from __future__ import annotations

import json
from dataclasses import asdict

from rich.console import Console
from rich.table import Table
from rich.text import Text

from agent_platform.ops.secret_scan.findings import Finding

_SHORT_COMMIT = 12


def findings_json(findings: list[Finding]) -> str:
    return json.dumps({"count": len(findings), "findings": [asdict(f) for f in findings]})


def print_findings(console: Console, findings: list[Finding], scanned: str) -> None:
    if not findings:
        console.print(f"No secrets found in {scanned}.")
        return
    with_commits = any(f.commit for f in findings)
    table = Table(title=f"Secrets found in {scanned}", title_justify="left")
    if with_commits:
        table.add_column("Commit", no_wrap=True)
    for name in ("Location", "Rule", "Fingerprint", "Excerpt (masked)"):
        table.add_column(name, overflow="fold")
    for finding in findings:
        # Text, not markup: an excerpt may hold square brackets.
        row = [Text(f"{finding.path}:{finding.line}"), Text(finding.rule)]
        row += [Text(finding.fingerprint), Text(finding.excerpt)]
        if with_commits:
            row.insert(0, Text((finding.commit or "")[:_SHORT_COMMIT]))
        table.add_row(*row)
    console.print(table)
    console.print(
        f"{len(findings)} finding(s). Remove each secret and rotate it; allow a false "
        "positive in .secrets-allowlist (see docs/secret-scanning.md)."
    )
