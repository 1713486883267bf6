"""The files of a working tree worth scanning: text, at most 1 MiB, outside tool directories.

Inside a git work tree the list comes from git (tracked and untracked files, not ignored
ones): an ignored file cannot be committed, and a local `.env` is where secrets belong.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

MAX_FILE_BYTES = 1024 * 1024
IGNORED_DIRECTORIES = frozenset(
    {
        ".git",
        ".venv",
        "venv",
        "node_modules",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".import_linter_cache",
        ".hypothesis",
        ".tox",
        ".nox",
    }
)
# A NUL byte in the first 8 KiB marks a binary file, as git decides it.
_BINARY_PROBE_BYTES = 8000


def files_to_scan(root: Path) -> list[str]:
    """Paths relative to root, `/`-separated, sorted."""
    listed = _git_files(root)
    candidates = listed if listed is not None else _walk(root)
    return sorted(
        path
        for path in candidates
        if not IGNORED_DIRECTORIES.intersection(path.split("/")[:-1])
        and (root / path).is_file()
        and not (root / path).is_symlink()
    )


def read_text(path: Path) -> str | None:
    """The file's text, or None for a big, binary or unreadable file."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    return decode_text(data)


def decode_text(data: bytes) -> str | None:
    if b"\0" in data[:_BINARY_PROBE_BYTES]:
        return None
    return data.decode("utf-8", errors="replace")


def _git_files(root: Path) -> list[str] | None:
    git = shutil.which("git")
    if git is None:
        return None
    result = subprocess.run(  # noqa: S603
        [git, "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=False,
    )
    if result.returncode != 0:
        return None
    return [name for name in result.stdout.decode("utf-8", "surrogateescape").split("\0") if name]


def _walk(root: Path) -> Iterator[str]:
    for directory, subdirectories, names in os.walk(root):
        subdirectories[:] = [d for d in subdirectories if d not in IGNORED_DIRECTORIES]
        relative = Path(directory).relative_to(root)
        for name in names:
            yield (relative / name).as_posix()
