"""deploy/Dockerfile and .dockerignore, parsed (there is no Docker engine on these machines).

The install steps themselves are exercised by .ci/check-image-steps and CI's image job.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import click
import pytest
import typer

from agent_platform.cli import app
from agent_platform.ops.endpoints import router

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
LIVENESS_URL = "http://127.0.0.1:8000/api/health/live"


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str]:
        parsed = json.loads(self.arguments)
        assert isinstance(parsed, list), f"{self.keyword} is not in exec form: {self.arguments}"
        return [str(part) for part in parsed]


@dataclass(frozen=True)
class Stage:
    base: str
    name: str | None
    instructions: tuple[Instruction, ...]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction:
        found = self.all(keyword)
        assert found, f"stage {self.name or self.base} has no {keyword}"
        return found[-1]


def instructions(text: str) -> list[Instruction]:
    """Logical instructions: comments dropped, backslash continuations joined."""
    joined: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        pending = f"{pending} {line}" if pending else line
        if pending.endswith("\\"):
            pending = pending[:-1].rstrip()
            continue
        keyword, _, arguments = pending.partition(" ")
        joined.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    return joined


def parse_dockerfile(text: str) -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with FROM's ${ARG} references resolved."""
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    current: list[Instruction] | None = None
    header: tuple[str, str | None] = ("", None)
    for instruction in instructions(text):
        if instruction.keyword == "FROM":
            if current is not None:
                stages.append(Stage(header[0], header[1], tuple(current)))
            words = instruction.arguments.split()
            image = re.sub(r"\$\{(\w+)\}", lambda m: global_args[m.group(1)], words[0])
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            header, current = (image, name), []
        elif current is None:
            assert instruction.keyword == "ARG", "only ARG may come before the first FROM"
            key, _, default = instruction.arguments.partition("=")
            global_args[key] = default
        else:
            current.append(instruction)
    assert current is not None, "no FROM in the Dockerfile"
    stages.append(Stage(header[0], header[1], tuple(current)))
    return global_args, stages


def final_stage() -> Stage:
    return parse_dockerfile(DOCKERFILE.read_text())[1][-1]


def liveness_probe() -> list[str]:
    """The image's HEALTHCHECK command (exec form, after CMD)."""
    arguments = final_stage().last("HEALTHCHECK").arguments
    options, _, command = arguments.partition(" CMD ")
    assert options.startswith("--"), f"unexpected HEALTHCHECK: {arguments}"
    return json.loads(command)  # type: ignore[no-any-return]


def assert_cli_accepts(argv: list[str]) -> None:
    """`agent-platform <argv>` names a real command with options it accepts (nothing runs)."""
    command: click.Command = typer.main.get_command(app)
    remaining = list(argv)
    while isinstance(command, click.Group):
        name = remaining.pop(0)
        found = command.get_command(click.Context(command), name)
        assert found is not None, f"agent-platform has no command {name!r} (from {argv})"
        command = found
    command.make_context(command.name or "", remaining)


def test_two_stages_on_one_pinned_python_and_a_uv_pinned_as_in_dev_py() -> None:
    global_args, stages = parse_dockerfile(DOCKERFILE.read_text())
    builder, final = stages[0], stages[-1]
    assert len(stages) == 2
    assert builder.name == "builder"
    # The venv built in the first stage runs on the second's interpreter: the same image.
    assert builder.base == final.base
    assert re.fullmatch(r"python:3\.1[1-3]\.\d+-slim(-\w+)?", final.base), final.base
    uv_pin = builder.last("ARG").arguments
    dev_py = ast.parse((ROOT / "dev.py").read_text())
    dev_uv = next(
        node.value.value
        for node in dev_py.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id == "UV_VERSION"
        and isinstance(node.value, ast.Constant)
    )
    assert uv_pin == f"UV_VERSION={dev_uv}"
    assert "PYTHON_IMAGE" in global_args


def test_builder_installs_the_lock_before_the_source_and_without_dev_tools() -> None:
    builder = parse_dockerfile(DOCKERFILE.read_text())[1][0]
    steps = [f"{i.keyword} {i.arguments}" for i in builder.instructions]
    copy_lock = next(n for n, s in enumerate(steps) if s.startswith("COPY pyproject.toml uv.lock"))
    copy_source = next(n for n, s in enumerate(steps) if s.startswith("COPY src"))
    syncs = [n for n, s in enumerate(steps) if "uv sync --frozen --no-dev --no-editable" in s]
    assert len(syncs) == 2
    assert copy_lock < syncs[0] < copy_source < syncs[1]
    assert "--no-install-project" in steps[syncs[0]]


def test_final_stage_runs_as_a_non_root_user_with_only_the_venv() -> None:
    final = final_stage()
    user = final.last("USER").arguments.split(":")[0]
    assert user not in {"root", "0"}
    assert user == "10001"
    # The last instructions run as that user: nothing after USER switches back.
    keywords = [i.keyword for i in final.instructions]
    assert "RUN" not in keywords[keywords.index("USER") :]
    copies = final.all("COPY")
    assert [c.arguments for c in copies] == ["--from=builder /app/.venv /app/.venv"]
    # No build tools or package installers in the image that ships.
    for run in final.all("RUN"):
        assert not re.search(r"apt-get install|pip install|uv (sync|pip)", run.arguments)


def test_environment_ports_entrypoint_and_command() -> None:
    final = final_stage()
    environment = " ".join(i.arguments for i in final.all("ENV"))
    assert 'PATH="/app/.venv/bin:${PATH}"' in environment
    for name in ("PYTHONDONTWRITEBYTECODE=1", "PYTHONUNBUFFERED=1", "GIT_SHA=${GIT_SHA}"):
        assert name in environment
    assert any(i.arguments.startswith("GIT_SHA") for i in final.all("ARG"))
    assert final.last("EXPOSE").arguments.split() == ["8000", "9091"]
    assert final.last("ENTRYPOINT").exec_form() == ["agent-platform"]
    command = final.last("CMD").exec_form()
    assert command == ["api", "--host", "0.0.0.0"]
    assert_cli_accepts(command)


def test_healthcheck_asks_the_liveness_endpoint_with_python() -> None:
    probe = liveness_probe()
    assert probe[:2] == ["python", "-c"]
    assert LIVENESS_URL in probe[2]
    assert "/api/health/live" in {route.path for route in router.routes}  # type: ignore[attr-defined]


class _Status(BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/api/health/live" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        """Quiet."""


@pytest.fixture
def status_server() -> Iterator[tuple[type[_Status], int]]:
    handler = type("Handler", (_Status,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield handler, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def test_healthcheck_command_passes_on_200_and_fails_on_503(
    status_server: tuple[type[_Status], int],
) -> None:
    handler, port = status_server
    probe = liveness_probe()
    command = [sys.executable, probe[1], probe[2].replace(":8000/", f":{port}/")]
    assert subprocess.run(command, capture_output=True, check=False).returncode == 0
    handler.status = 503
    assert subprocess.run(command, capture_output=True, check=False).returncode != 0


def test_dockerignore_keeps_secrets_and_bulk_out_but_not_what_the_image_copies() -> None:
    ignored = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".git", ".venv", ".env", "tests", ".data"} <= ignored
    builder = parse_dockerfile(DOCKERFILE.read_text())[1][0]
    for copy in builder.all("COPY"):
        for source in copy.arguments.split()[:-1]:
            assert source not in ignored, f"{source} is copied but .dockerignore excludes it"
            assert (ROOT / source).exists(), f"the Dockerfile copies {source}, which is missing"
