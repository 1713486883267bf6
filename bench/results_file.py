"""Where a benchmark's figures go, with what makes them comparable: the machine and the code.

Each run writes bench/results/<benchmark>-<UTC timestamp>.json; `machine_details()` is taken
before the run starts, so that it names the commit measured, not a later one.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO_ROOT / "bench" / "results"

_PACKAGES = ("procrastinate", "fastapi", "uvicorn", "sqlalchemy", "psycopg", "httpx", "redis")


def machine_details() -> dict[str, Any]:
    """CPU, memory, Python, the versions of the packages that matter, and the commit."""
    return {
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu_model": _proc_value("/proc/cpuinfo", "model name"),
        "cpu_count": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "packages": {
            **{package: _version(package) for package in _PACKAGES},
            "uvloop": _installed("uvloop"),
            "httptools": _installed("httptools"),
        },
        "git": _git(),
    }


def write_results(benchmark: str, results: dict[str, Any], results_dir: Path = RESULTS_DIR) -> Path:
    results_dir.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = results_dir / f"{benchmark}-{stamp}.json"
    path.write_text(json.dumps(results, indent=2, default=str) + "\n")
    return path


def _proc_value(path: str, name: str) -> str | None:
    """A `name: value` line of a /proc file; None where there is no /proc (not Linux)."""
    with contextlib.suppress(OSError):
        for line in Path(path).read_text().splitlines():
            if line.startswith(name):
                return line.split(":", 1)[1].strip()
    return None


def _memory_gib() -> float | None:
    total = _proc_value("/proc/meminfo", "MemTotal")  # "16318412 kB"
    return round(int(total.split()[0]) / 1024 / 1024, 1) if total else None


def _version(package: str) -> str | None:
    try:
        return version(package)
    except PackageNotFoundError:
        return None


def _installed(module: str) -> str:
    return "installed" if importlib.util.find_spec(module) else "not installed"


def _git() -> dict[str, Any]:
    git = shutil.which("git")
    if git is None:
        return {}

    def out(*argv: str) -> str:
        result = subprocess.run(
            [git, *argv], cwd=REPO_ROOT, capture_output=True, text=True, check=False
        )
        return result.stdout

    changed = [line[3:] for line in out("status", "--porcelain").splitlines() if line]
    return {"commit": out("rev-parse", "HEAD").strip(), "uncommitted_changes": changed}
