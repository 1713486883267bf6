"""The allow-list file: findings known not to be secrets, by fingerprint and/or path glob.

One entry per line, `#` starts a comment:
    3f9a0c1b2d4e5f60                 that finding, wherever it is
    tests/fixtures/*.json            every finding in files matching the glob
    3f9a0c1b2d4e5f60 docs/*.md       that finding, only in files matching the glob
Globs are matched against the path relative to the scanned root with fnmatch (`*` also
crosses `/`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path

from agent_platform.ops.secret_scan.errors import SecretScanError
from agent_platform.ops.secret_scan.findings import Finding

DEFAULT_ALLOWLIST_NAME = ".secrets-allowlist"
_FINGERPRINT = re.compile(r"[0-9a-f]{16}")


@dataclass(frozen=True)
class AllowEntry:
    fingerprint: str | None
    path_glob: str | None

    def allows(self, finding: Finding) -> bool:
        return (self.fingerprint is None or self.fingerprint == finding.fingerprint) and (
            self.path_glob is None or fnmatchcase(finding.path, self.path_glob)
        )


@dataclass(frozen=True)
class Allowlist:
    entries: tuple[AllowEntry, ...] = ()

    def allows(self, finding: Finding) -> bool:
        return any(entry.allows(finding) for entry in self.entries)


def load_allowlist(root: Path, explicit: Path | None) -> Allowlist:
    """The given file (which must exist), else `.secrets-allowlist` in root if there is one."""
    path = explicit or root / DEFAULT_ALLOWLIST_NAME
    if explicit is None and not path.is_file():
        return Allowlist()
    try:
        text = path.read_text("utf-8")
    except OSError as exc:
        raise SecretScanError(f"cannot read the allow-list {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SecretScanError(f"the allow-list {path} is not UTF-8 text") from None
    return parse_allowlist(text, source=str(path))


def parse_allowlist(text: str, source: str = DEFAULT_ALLOWLIST_NAME) -> Allowlist:
    entries = []
    for number, raw in enumerate(text.splitlines(), start=1):
        words = raw.split("#", 1)[0].split()
        if not words:
            continue
        if len(words) > 2 or (len(words) == 2 and not _FINGERPRINT.fullmatch(words[0])):
            raise SecretScanError(
                f"{source}:{number}: expected a fingerprint, a path glob, or both: {raw.strip()}"
            )
        if _FINGERPRINT.fullmatch(words[0]):
            entries.append(AllowEntry(words[0], words[1] if len(words) == 2 else None))
        else:
            entries.append(AllowEntry(None, words[0]))
    return Allowlist(tuple(entries))
