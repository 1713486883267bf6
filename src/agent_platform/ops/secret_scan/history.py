"""Every file version in a git repository's history, each distinct blob read once.

`git log --all -m --raw` names, for each commit (a merge against each parent), the blobs it
added or changed, so a file deleted since is still there and each blob can be attributed
to the oldest commit and path that introduced it. `git cat-file --batch` then streams the
blobs' contents in one process.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from agent_platform.ops.secret_scan.errors import SecretScanError
from agent_platform.ops.secret_scan.tree import MAX_FILE_BYTES

# Oldest first; merges against each parent; a \x01 before each commit's id, NUL-separated.
_LOG_EVERY_CHANGE = (
    "log",
    "--all",
    "-m",
    "--raw",
    "--no-renames",
    "--no-abbrev",
    "-z",
    "--reverse",
    "--format=%x01%H",
)
_NO_BLOB = "0" * 40
# Submodules (commits, not blobs) have this mode in raw diff output.
_GITLINK_MODE = "160000"


@dataclass(frozen=True)
class BlobOrigin:
    blob: str
    commit: str
    path: str


def ensure_repository(repo: Path) -> str:
    """The git executable, once repo is known to be a git repository; else SecretScanError."""
    git = shutil.which("git")
    if git is None:
        raise SecretScanError("git is not installed: --history needs it")
    if not repo.is_dir():
        raise SecretScanError(f"no such directory: {repo}")
    checked = _git(git, repo, "rev-parse", "--git-dir", check=False)
    if checked.returncode != 0:
        raise SecretScanError(f"not a git repository: {repo}")
    return git


def blob_origins(git: str, repo: Path) -> list[BlobOrigin]:
    """Each blob in the history once, with the oldest commit and path that added it."""
    log = _git(git, repo, *_LOG_EVERY_CHANGE).stdout
    origins: dict[str, BlobOrigin] = {}
    for chunk in log.split(b"\x01")[1:]:
        header, _, changes = chunk.partition(b"\0")
        commit = header.decode().strip()
        fields = changes.lstrip(b"\n").split(b"\0")
        for meta, raw_path in zip(fields[0::2], fields[1::2], strict=False):
            # ":<old mode> <new mode> <old blob> <new blob> <status>"
            _, new_mode, _, blob, _ = meta.decode().split(" ")
            if blob != _NO_BLOB and new_mode != _GITLINK_MODE and blob not in origins:
                path = raw_path.decode("utf-8", "surrogateescape")
                origins[blob] = BlobOrigin(blob, commit, path)
    return list(origins.values())


def small_blobs(git: str, repo: Path, blobs: list[str]) -> set[str]:
    """The blobs of at most 1 MiB: bigger ones are skipped like big files in a tree."""
    asked = "".join(f"{blob}\n" for blob in blobs).encode()
    answer = _git(git, repo, "cat-file", "--batch-check", stdin=asked).stdout
    # "<blob> blob <size>" per line, or "<blob> missing" in a partial clone
    found = (line.split(b" ") for line in answer.splitlines())
    return {
        fields[0].decode()
        for fields in found
        if len(fields) == 3 and int(fields[2]) <= MAX_FILE_BYTES
    }


def blob_contents(git: str, repo: Path, blobs: list[str]) -> Iterator[tuple[str, bytes]]:
    """(blob, content) for each blob, in order, read from one `git cat-file --batch`."""
    process = subprocess.Popen(  # noqa: S603 - git with fixed arguments, no shell
        [git, "-C", str(repo), "cat-file", "--batch"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert process.stdin is not None
    assert process.stdout is not None
    stdin, stdout = process.stdin, process.stdout

    # Written from a thread: git answers while it reads, and both pipes have a limited buffer.
    def ask() -> None:
        try:
            with stdin:
                for blob in blobs:
                    stdin.write(f"{blob}\n".encode())
        except BrokenPipeError:
            pass  # the reader stopped early and ended git

    writer = threading.Thread(target=ask, daemon=True)
    writer.start()
    try:
        for blob in blobs:
            # "<blob> blob <size>\n<content>\n"
            size = int(stdout.readline().split(b" ")[2])
            yield blob, stdout.read(size)
            stdout.read(1)
    finally:
        stdout.close()
        process.kill()
        process.wait()
        writer.join()


def _git(
    git: str, repo: Path, *args: str, stdin: bytes | None = None, check: bool = True
) -> subprocess.CompletedProcess[bytes]:
    result = subprocess.run(  # noqa: S603 - git with fixed arguments, no shell
        [git, "-C", str(repo), *args], input=stdin, capture_output=True, check=False
    )
    if check and result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines()
        raise SecretScanError(f"git {args[0]} failed: {message[0] if message else 'no reason'}")
    return result
