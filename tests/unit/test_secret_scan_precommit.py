"""The pre-commit configuration runs ruff, mypy and the secret scan."""

from __future__ import annotations

from pathlib import Path

import yaml

CONFIG = Path(__file__).resolve().parents[2] / ".pre-commit-config.yaml"


def test_pre_commit_runs_ruff_mypy_and_the_secret_scan() -> None:
    config = yaml.safe_load(CONFIG.read_text(encoding="utf-8"))
    hooks = {hook["id"]: hook for repo in config["repos"] for hook in repo["hooks"]}

    assert hooks["ruff-check"]["entry"].startswith(".venv/bin/ruff check")
    assert hooks["ruff-format"]["entry"].startswith(".venv/bin/ruff format")
    assert hooks["mypy"]["entry"] == ".venv/bin/mypy src"
    assert hooks["secrets-scan"]["entry"] == ".venv/bin/agent-platform secrets scan"
    # Both check the whole tree: given file names, mypy would check them twice and the
    # scanner would take the first one for its PATH.
    assert hooks["mypy"]["pass_filenames"] is False
    assert hooks["secrets-scan"]["pass_filenames"] is False
