"""Secret scanning of a working tree or of a git repository's whole history.

Own rules rather than detect-secrets: its plugins know none of OpenRouter, Sentry or
database URLs, it scans no git history, and its settings are process-wide state; the
rules here are a page of regular expressions tested on a corpus of true and false
positives (tests/unit/secret_corpus/).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from agent_platform.ops.secret_scan import history
from agent_platform.ops.secret_scan.allowlist import load_allowlist
from agent_platform.ops.secret_scan.errors import SecretScanError
from agent_platform.ops.secret_scan.findings import Finding, scan_text
from agent_platform.ops.secret_scan.tree import decode_text, files_to_scan, read_text

__all__ = ["Finding", "Progress", "SecretScanError", "scan_history", "scan_tree"]

# Called with (items done, items in all) as the scan goes.
Progress = Callable[[int, int], None]


def scan_tree(
    root: Path, allowlist: Path | None = None, *, on_progress: Progress | None = None
) -> list[Finding]:
    """Findings in the files under root (or in root itself, a file), minus allowed ones."""
    if root.is_file():
        paths, root = [root.name], root.parent
    elif root.is_dir():
        paths = files_to_scan(root)
    else:
        raise SecretScanError(f"no such file or directory: {root}")
    allowed = load_allowlist(root, allowlist)
    findings = []
    for done, path in enumerate(paths, start=1):
        text = read_text(root / path)
        if text is not None:
            findings += [f for f in scan_text(text, path) if not allowed.allows(f)]
        if on_progress is not None:
            on_progress(done, len(paths))
    return findings


def scan_history(
    repo: Path, allowlist: Path | None = None, *, on_progress: Progress | None = None
) -> list[Finding]:
    """Findings in every file version of every commit reachable from any ref.

    A secret is reported once per path, at the oldest commit that has it there.
    """
    git = history.ensure_repository(repo)
    allowed = load_allowlist(repo, allowlist)
    origins = history.blob_origins(git, repo)
    small = history.small_blobs(git, repo, [origin.blob for origin in origins])
    origins = [origin for origin in origins if origin.blob in small]
    origin_of = {origin.blob: origin for origin in origins}
    findings: dict[tuple[str, str], Finding] = {}
    contents = history.blob_contents(git, repo, list(origin_of))
    for done, (blob, content) in enumerate(contents, start=1):
        text = decode_text(content)
        origin = origin_of[blob]
        for finding in scan_text(text or "", origin.path, commit=origin.commit):
            if not allowed.allows(finding):
                findings.setdefault((finding.fingerprint, finding.path), finding)
        if on_progress is not None:
            on_progress(done, len(origin_of))
    return list(findings.values())
