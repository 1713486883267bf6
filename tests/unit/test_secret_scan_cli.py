"""`agent-platform secrets scan`: working trees, git history, allow-lists and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from agent_platform.cli import app
from agent_platform.ops.secret_scan import SecretScanError, scan_history, scan_tree
from tests.unit.secret_corpus import ALNUM, fake

REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
_GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
    "GIT_CONFIG_NOSYSTEM": "1",
    "HOME": "/nonexistent",
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", *args],
        cwd=repo,
        env={**os.environ, **_GIT_IDENTITY},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def commit_all(repo: Path, message: str) -> str:
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", message)
    return git(repo, "rev-parse", "HEAD")


def scan(*args: str | Path) -> tuple[int, str, str]:
    # Wide enough that rich keeps each table cell on one line.
    result = CliRunner().invoke(app, ["secrets", "scan", *map(str, args)], env={"COLUMNS": "250"})
    return result.exit_code, result.stdout, result.stderr


def secret_line() -> str:
    return f"KOMMO_CLIENT_SECRET={fake(ALNUM, 40)}\n"


def test_a_secret_committed_then_deleted_is_found_in_the_history_only(tmp_path: Path) -> None:
    git(tmp_path, "init", "--quiet")
    (tmp_path / "README.md").write_text("# demo\n")
    (tmp_path / "config").mkdir()
    leaked = secret_line()
    (tmp_path / "config" / "app.env").write_text(f"LOG_LEVEL=INFO\n{leaked}")
    added = commit_all(tmp_path, "add config")
    # A later version of the file still has it: reported once, at the commit that added it.
    (tmp_path / "config" / "app.env").write_text(f"LOG_LEVEL=DEBUG\n{leaked}")
    commit_all(tmp_path, "debug logs")
    git(tmp_path, "rm", "--quiet", "config/app.env")
    commit_all(tmp_path, "remove config")

    assert scan_tree(tmp_path) == []
    assert scan(tmp_path)[0] == 0
    [finding] = scan_history(tmp_path)
    assert (finding.path, finding.line, finding.commit) == ("config/app.env", 2, added)
    assert finding.rule == "secret-assignment"

    code, stdout, _ = scan(tmp_path, "--history", "--json")
    assert code == 1
    document = json.loads(stdout)
    assert document["count"] == 1
    assert document["findings"] == [
        {
            "path": "config/app.env",
            "line": 2,
            "rule": "secret-assignment",
            "fingerprint": finding.fingerprint,
            "commit": added,
            "excerpt": finding.excerpt,
        }
    ]
    assert leaked.split("=")[1].strip() not in stdout

    # Allowed (as a false positive would be) in the working tree's allow-list: exit 0.
    (tmp_path / ".secrets-allowlist").write_text(f"# rotated\n{finding.fingerprint}\n")
    assert scan(tmp_path, "--history")[0] == 0


def test_a_tree_scan_skips_tool_directories_binary_big_and_git_ignored_files(
    tmp_path: Path,
) -> None:
    for skipped in (".venv/lib", "node_modules/pkg", "src/__pycache__", ".git"):
        (tmp_path / skipped).mkdir(parents=True)
        (tmp_path / skipped / "settings.env").write_text(secret_line())
    (tmp_path / "logo.png").write_bytes(b"\x89PNG\0\0" + secret_line().encode())
    (tmp_path / "dump.sql").write_text(secret_line() + "-- filler\n" * 120_000)
    (tmp_path / "src" / "settings.py").write_text("DEBUG = True\n" + secret_line())

    assert [(f.path, f.line) for f in scan_tree(tmp_path)] == [("src/settings.py", 2)]

    # In a git work tree, what git ignores cannot be committed: a local .env is not reported.
    git(tmp_path, "init", "--quiet")
    (tmp_path / ".gitignore").write_text(".env\n")
    (tmp_path / ".env").write_text(secret_line())
    assert [f.path for f in scan_tree(tmp_path)] == ["src/settings.py"]


def test_allow_list_file_and_inline_marker_suppress_false_positives(tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "fixture.env").write_text(secret_line())
    (tmp_path / "example.env").write_text(secret_line())
    (tmp_path / "marked.py").write_text(f"{secret_line().strip()}  # secrets-scan: allow\n")
    [_, example] = sorted(scan_tree(tmp_path), key=lambda f: f.path, reverse=True)
    assert example.path == "example.env"

    code, stdout, _ = scan(tmp_path)
    assert code == 1
    assert "tests/fixture.env:1" in stdout
    assert "example.env:1" in stdout
    assert "marked.py" not in stdout

    (tmp_path / ".secrets-allowlist").write_text("tests/*  # fixtures are fake\n")
    elsewhere = tmp_path.parent / f"{tmp_path.name}-allowlist"
    elsewhere.write_text(f"{example.fingerprint} *.env\ntests/*\n")
    assert [f.path for f in scan_tree(tmp_path)] == ["example.env"]
    assert scan(tmp_path, "--allowlist", elsewhere)[0] == 0


def test_the_table_shows_where_and_what_but_never_the_secret(tmp_path: Path) -> None:
    value = fake(ALNUM, 40)
    (tmp_path / "deploy.yaml").write_text(f"env:\n  - KOMMO_CLIENT_SECRET: '{value}'\n")

    code, stdout, _ = scan(tmp_path)

    assert code == 1
    assert "deploy.yaml:2" in stdout
    assert "secret-assignment" in stdout
    assert value[6:14] not in stdout


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["{tmp}/missing"], "no such file or directory"),
        (["{tmp}", "--history"], "not a git repository"),
        (["{tmp}", "--allowlist", "{tmp}/missing.txt"], "cannot read the allow-list"),
        (["{tmp}", "--allowlist", "{tmp}/bad.txt"], "expected a fingerprint, a path glob"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    (tmp_path / "bad.txt").write_text("a b c\n")

    code, stdout, stderr = scan(*(arg.format(tmp=tmp_path) for arg in args))

    assert code == 2
    assert stdout == ""
    assert stderr.startswith("Cannot scan: ")
    assert says in stderr
    assert len(stderr.strip().splitlines()) == 1


def test_scan_history_refuses_a_directory_that_is_not_a_repository(tmp_path: Path) -> None:
    with pytest.raises(SecretScanError, match="not a git repository"):
        scan_history(tmp_path)


def test_this_repository_has_no_secrets() -> None:
    code, stdout, _ = scan(REPOSITORY_ROOT, "--json")

    assert (code, json.loads(stdout)["findings"]) == (0, [])
