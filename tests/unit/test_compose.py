"""deploy/docker-compose.yml, parsed: health checks, images, scaling, environment, volumes.

CI's image job starts the stack for real; here every rule is checked without Docker.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from agent_platform.config import Settings
from tests.unit.test_dockerfile import assert_cli_accepts, liveness_probe

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_TEXT = (DEPLOY / "docker-compose.yml").read_text()
COMPOSE: dict[str, Any] = yaml.safe_load(COMPOSE_TEXT)
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PLATFORM = ("migrate", "api", "worker")
SETTINGS_VARIABLES = {name.upper() for name in Settings.model_fields}
# Variables the third-party images read themselves.
IMAGE_VARIABLES = {
    "postgres": re.compile(r"POSTGRES_(USER|PASSWORD|DB)"),
    "grafana": re.compile(r"GF_[A-Z_]+"),
}
ONE_SHOT = {"migrate"}


def test_the_stack_has_every_part() -> None:
    assert set(SERVICES) == {
        "migrate",
        "api",
        "worker",
        "postgres",
        "redis",
        "prometheus",
        "alertmanager",
        "grafana",
    }


def test_api_worker_and_migrate_run_one_image_built_once() -> None:
    builds = {name: SERVICES[name]["build"] for name in PLATFORM}
    images = {name: SERVICES[name]["image"] for name in PLATFORM}
    assert len({repr(b) for b in builds.values()}) == 1
    assert len(set(images.values())) == 1
    build = builds["api"]
    assert build["context"] == ".."
    assert build["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()


def test_each_platform_service_runs_a_real_command() -> None:
    assert SERVICES["migrate"]["command"] == ["db", "upgrade"]
    assert SERVICES["worker"]["command"] == ["worker"]
    assert SERVICES["api"]["command"][0] == "api"
    for name in PLATFORM:
        assert_cli_accepts(SERVICES[name]["command"])


def test_every_long_running_service_has_a_healthcheck() -> None:
    for name, service in SERVICES.items():
        check = service.get("healthcheck", {})
        if name in ONE_SHOT:
            assert service["restart"] == "no"
            continue
        assert check.get("test"), f"{name} has no healthcheck"
        assert not check.get("disable"), f"{name} disables its healthcheck"


def test_api_and_worker_probe_their_own_health_endpoints_like_the_image() -> None:
    probe = liveness_probe()
    assert SERVICES["api"]["healthcheck"]["test"] == ["CMD", *probe]
    worker_probe = [part.replace(":8000/api/health/live", ":9091/health") for part in probe]
    assert worker_probe != probe
    assert SERVICES["worker"]["healthcheck"]["test"] == ["CMD", *worker_probe]


def test_platform_starts_after_healthy_dependencies_and_a_completed_migration() -> None:
    assert SERVICES["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("api", "worker"):
        assert SERVICES[name]["depends_on"] == {
            "postgres": {"condition": "service_healthy"},
            "redis": {"condition": "service_healthy"},
            "migrate": {"condition": "service_completed_successfully"},
        }


def test_images_are_pinned_to_versions() -> None:
    for name, service in SERVICES.items():
        if "build" in service:
            continue
        image = service["image"]
        repository, _, tag = image.rpartition(":")
        assert repository, f"{name}: {image} has no tag"
        assert tag != "latest"
        assert re.search(r"\d+\.\d+", tag), f"{name}: {image} is not pinned to a version"
    assert SERVICES["postgres"]["image"].startswith("pgvector/pgvector:")
    assert SERVICES["postgres"]["image"].endswith("-pg16")
    assert SERVICES["redis"]["image"].startswith("redis:7.")


def test_worker_can_be_scaled() -> None:
    worker = SERVICES["worker"]
    assert "container_name" not in worker
    assert "ports" not in worker


def test_published_ports() -> None:
    assert SERVICES["api"]["ports"] == ["${API_PORT:-8000}:8000"]
    for name in ("migrate", "worker", "postgres", "redis"):
        assert "ports" not in SERVICES[name], f"{name} must not be published on the host"
    # Prometheus and Alertmanager have no login: this machine only.
    for name in ("prometheus", "alertmanager"):
        assert all(port.startswith("127.0.0.1:") for port in SERVICES[name]["ports"])


def test_platform_environment_names_are_settings_and_point_at_the_stack() -> None:
    for name in PLATFORM:
        environment = SERVICES[name]["environment"]
        assert set(environment) <= SETTINGS_VARIABLES, set(environment) - SETTINGS_VARIABLES
        assert "@postgres:5432/" in environment["DATABASE_URL"]
        assert environment["REDIS_URL"].startswith("redis://redis:6379/")
    for name, pattern in IMAGE_VARIABLES.items():
        for variable in SERVICES[name]["environment"]:
            assert pattern.fullmatch(variable), f"{name} does not read {variable}"


def test_every_variable_of_the_file_is_a_setting_or_documented() -> None:
    deployment_doc = (ROOT / "docs" / "deployment.md").read_text()
    variables = set(re.findall(r"\$\{(\w+)", COMPOSE_TEXT))
    assert variables
    undocumented = {
        v for v in variables if v not in SETTINGS_VARIABLES and f"`{v}`" not in deployment_doc
    }
    assert not undocumented, f"not described in docs/deployment.md: {sorted(undocumented)}"


def test_required_secrets_have_no_default() -> None:
    for variable in ("POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD"):
        assert re.search(rf"\$\{{{variable}:\?", COMPOSE_TEXT), f"{variable} must be required"
        assert not re.search(rf"\$\{{{variable}:-", COMPOSE_TEXT)


def test_redis_has_a_memory_limit_and_an_eviction_policy() -> None:
    command = SERVICES["redis"]["command"]
    maxmemory = command[command.index("--maxmemory") + 1]
    assert re.fullmatch(r"\$\{REDIS_MAXMEMORY:-[1-9]\d*[kmg]b\}", maxmemory)
    assert command[command.index("--maxmemory-policy") + 1] == "allkeys-lru"


def test_volumes_are_declared_and_mounted_paths_exist() -> None:
    declared = set(COMPOSE["volumes"])
    used: set[str] = set()
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source, target, *_ = volume.split(":")
            assert target.startswith("/"), f"{name}: {volume}"
            if source.startswith((".", "/")):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}, which is missing"
            else:
                assert source in declared, f"{name} uses undeclared volume {source}"
                used.add(source)
    assert used == declared, f"declared but unused: {declared - used}"
    assert any(v.endswith(":/var/lib/postgresql/data") for v in SERVICES["postgres"]["volumes"])


def _targets(scrape_config: dict[str, Any]) -> list[str]:
    static = [t for c in scrape_config.get("static_configs", []) for t in c["targets"]]
    dns = [
        f"{name}:{c['port']}"
        for c in scrape_config.get("dns_sd_configs", [])
        for name in c["names"]
    ]
    return static + dns


def test_prometheus_scrapes_the_platform_and_alerts_through_the_stack() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    jobs = {job["job_name"]: _targets(job) for job in config["scrape_configs"]}
    assert jobs["agent-platform-api"] == ["api:8000"]
    assert jobs["agent-platform-worker"] == ["worker:9091"]
    alertmanagers = [t for a in config["alerting"]["alertmanagers"] for t in _targets(a)]
    assert alertmanagers == ["alertmanager:9093"]
    for rule_file in config["rule_files"]:
        # Paths inside the container: deploy/prometheus is mounted at /etc/prometheus.
        relative = rule_file.removeprefix("/etc/prometheus/")
        assert list((DEPLOY / "prometheus").glob(relative)), f"no rule file {rule_file}"


def test_grafana_reads_the_stacks_prometheus_and_the_mounted_dashboards() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasources = [
        source
        for path in sorted((provisioning / "datasources").glob("*.y*ml"))
        for source in yaml.safe_load(path.read_text())["datasources"]
    ]
    assert [s["url"] for s in datasources if s["type"] == "prometheus"] == [
        "http://prometheus:9090"
    ]
    providers = [
        provider
        for path in sorted((provisioning / "dashboards").glob("*.y*ml"))
        for provider in yaml.safe_load(path.read_text())["providers"]
    ]
    mounted = {v.split(":")[1] for v in SERVICES["grafana"]["volumes"]}
    assert providers
    assert all(p["options"]["path"] in mounted for p in providers)
