"""pg_dump and pg_restore of a major version that fits the server.

pg_dump refuses a server newer than itself, and an older pg_restore cannot read a newer
archive, so the client's major version must be the server's, or else the lowest newer one.
Looked for in: the embedded PostgreSQL's own bin directory (the pgserver wheel ships them),
Debian's /usr/lib/postgresql/<major>/bin, then PATH.
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from agent_platform.ops.backups.model import BackupError

DEBIAN_CLIENTS = Path("/usr/lib/postgresql")
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")


@dataclass(frozen=True)
class ClientTool:
    path: Path
    major: int
    version: str  # "15.19"


def find_tool(name: str, minimum_major: int) -> ClientTool:
    """`name` (pg_dump, pg_restore) of major `minimum_major`, else the lowest newer one."""
    candidates = [tool for tool in _installed(name) if tool.major >= minimum_major]
    if not candidates:
        looked = ", ".join(str(d) for d in _search_directories()) + ", PATH"
        raise BackupError(
            f"no {name} of PostgreSQL {minimum_major} or newer (looked in {looked}): "
            f"install postgresql-client-{minimum_major}"
        )
    return min(candidates, key=lambda tool: tool.major)


def major_of(version: str) -> int:
    return int(version.split(".")[0])


def _installed(name: str) -> list[ClientTool]:
    paths = [directory / name for directory in _search_directories()]
    on_path = shutil.which(name)
    if on_path:
        paths.append(Path(on_path))
    found = (_describe(path) for path in dict.fromkeys(paths) if path.is_file())
    return [tool for tool in found if tool is not None]


def _search_directories() -> list[Path]:
    directories = []
    spec = importlib.util.find_spec("pgserver")
    if spec is not None and spec.submodule_search_locations:
        directories.append(Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin")
    if DEBIAN_CLIENTS.is_dir():
        directories += sorted(DEBIAN_CLIENTS.glob("*/bin"))
    return directories


@cache
def _describe(path: Path) -> ClientTool | None:
    """The tool's version, from `--version` (None when it does not run)."""
    try:
        said = subprocess.run(  # noqa: S603 - a PostgreSQL client we found, no shell
            [str(path), "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    match = _VERSION.search(said)
    if match is None:
        return None
    major, minor = match.group(1), match.group(2)
    return ClientTool(path, int(major), f"{major}.{minor}" if minor else major)
