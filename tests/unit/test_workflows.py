"""The GitHub workflows and Dependabot's configuration, parsed: the jobs the issue names exist
and do what their names say."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.unit.test_dockerfile import DOCKERFILE

ROOT = Path(__file__).resolve().parents[2]
GITHUB = ROOT / ".github"


def load(path: Path) -> dict[str, Any]:
    document: dict[Any, Any] = yaml.safe_load(path.read_text())
    # YAML 1.1 reads the key `on` as True.
    if True in document:
        document["on"] = document.pop(True)
    return document


CI = load(GITHUB / "workflows" / "ci.yml")
DEPLOY = load(GITHUB / "workflows" / "deploy.yml")
SETUP = load(GITHUB / "actions" / "setup-environment" / "action.yml")


def commands(job: dict[str, Any]) -> str:
    return "\n".join(step.get("run", "") for step in job["steps"])


def uses(job: dict[str, Any]) -> list[str]:
    return [step["uses"] for step in job["steps"] if "uses" in step]


def test_ci_has_every_job_of_the_issue() -> None:
    assert set(CI["jobs"]) == {
        "lint",
        "types",
        "import-contracts",
        "secret-scan",
        "dependency-audit",
        "unit",
        "integration",
        "end-to-end",
        "promtool",
        "image",
    }
    assert {"push", "pull_request"} <= set(CI["on"])


def test_each_ci_job_runs_its_check() -> None:
    jobs = CI["jobs"]
    expected = {
        "lint": ["ruff check", "ruff format --check"],
        "types": ["mypy"],
        "import-contracts": ["lint-imports"],
        "secret-scan": ["agent-platform secrets scan --history"],
        "dependency-audit": ["uv export --frozen", "pip-audit"],
        "unit": ["pytest -q tests/unit"],
        "integration": ["pytest -q tests/integration"],
        "end-to-end": [".ci/install-chromium", "tests/browser"],
        "promtool": ["promtool check config", "test_prometheus_rules.py"],
        "image": ["docker compose", "/api/health"],
    }
    for name, fragments in expected.items():
        for fragment in fragments:
            assert fragment in commands(jobs[name]), f"{name} does not run {fragment!r}"
    image_build = next(
        s for s in jobs["image"]["steps"] if "build-push-action" in s.get("uses", "")
    )
    assert image_build["with"]["file"] == "deploy/Dockerfile"
    assert image_build["with"]["push"] is False


def test_the_secret_scan_sees_the_whole_history() -> None:
    checkout = CI["jobs"]["secret-scan"]["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@")
    assert checkout["with"]["fetch-depth"] == 0


def test_integration_and_end_to_end_jobs_have_postgres_and_redis() -> None:
    for name in ("integration", "end-to-end"):
        job = CI["jobs"][name]
        services = job["services"]
        assert services["postgres"]["image"].startswith("pgvector/pgvector:")
        assert services["redis"]["image"].startswith("redis:7")
        for service in services.values():
            assert "--health-cmd" in service["options"]
        assert job["env"]["TEST_DATABASE_URL"].startswith("postgresql://")
        assert job["env"]["TEST_REDIS_URL"].startswith("redis://")


def test_python_jobs_share_the_cached_locked_environment() -> None:
    steps = SETUP["runs"]["steps"]
    setup_uv = next(s for s in steps if s.get("uses", "").startswith("astral-sh/setup-uv@"))
    assert setup_uv["with"]["enable-cache"] is True
    assert "uv sync --frozen" in "\n".join(s.get("run", "") for s in steps)
    # The same uv as dev.py and the image.
    dockerfile_uv = re.search(r"^ARG UV_VERSION=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert dockerfile_uv is not None
    assert setup_uv["with"]["version"] == dockerfile_uv.group(1)
    for name in ("lint", "types", "import-contracts", "secret-scan", "unit", "integration"):
        assert "./.github/actions/setup-environment" in uses(CI["jobs"][name]), name


def test_actions_are_pinned_to_a_version() -> None:
    for workflow in (CI, DEPLOY):
        for job in workflow["jobs"].values():
            for action in uses(job):
                if action.startswith("./"):
                    continue
                assert re.search(r"@v\d+", action), f"{action} is not pinned"


def test_deploy_checks_health_after_deploying_and_rolls_back() -> None:
    assert {"push"} <= set(DEPLOY["on"])
    assert DEPLOY["on"]["push"]["branches"] == ["main"]
    image = DEPLOY["jobs"]["image"]
    push = next(s for s in image["steps"] if "build-push-action" in s.get("uses", ""))
    assert push["with"]["push"] is True
    assert image["permissions"]["packages"] == "write"
    deploy = DEPLOY["jobs"]["deploy"]
    assert deploy["needs"] == "image"
    names = [step.get("name", "") for step in deploy["steps"]]
    deploy_at = names.index("Deploy")
    check_at = names.index("Health check after deploying")
    rollback_at = names.index("Roll back")
    assert deploy_at < check_at < rollback_at
    check = deploy["steps"][check_at]
    assert "/api/health" in check["env"]["HEALTH_URL"]
    assert "for attempt in" in check["run"]
    assert "exit 1" in check["run"]
    rollback = deploy["steps"][rollback_at]
    assert rollback["if"].startswith("failure()")
    assert "--no-deps api worker" in rollback["run"]
    assert DEPLOY["concurrency"]["cancel-in-progress"] is False


def test_dependabot_updates_python_actions_and_images_weekly() -> None:
    updates = yaml.safe_load((GITHUB / "dependabot.yml").read_text())["updates"]
    ecosystems = {u["package-ecosystem"]: u for u in updates}
    assert {"uv", "github-actions", "docker", "docker-compose"} <= set(ecosystems)
    assert all(u["schedule"]["interval"] == "weekly" for u in updates)
    assert ecosystems["docker"]["directory"] == "/deploy"
    assert (ROOT / ecosystems["uv"]["directory"].lstrip("/") / "uv.lock").exists()
