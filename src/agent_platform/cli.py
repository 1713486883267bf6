"""The `agent-platform` command."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Annotated

import typer

from agent_platform.commands import backup, dr, preflight, queue, secrets
from agent_platform.commands.common import JsonOutput, load_settings, run_async
from agent_platform.organization.models import Role

app = typer.Typer(
    help="GPT Agent Platform: AI agents that work inside Kommo CRM.", no_args_is_help=True
)
db_app = typer.Typer(help="Database schema migrations.", no_args_is_help=True)
kommo_app = typer.Typer(help="Kommo tools.", no_args_is_help=True)
agent_app = typer.Typer(help="AI agents.", no_args_is_help=True)
user_app = typer.Typer(help="Dashboard users.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(kommo_app, name="kommo")
app.add_typer(agent_app, name="agent")
app.add_typer(user_app, name="user")
app.add_typer(queue.app, name="queue")
app.add_typer(secrets.app, name="secrets")
app.add_typer(backup.app, name="backup")
app.add_typer(dr.app, name="dr")
app.command("preflight")(preflight.preflight)

Host = Annotated[str, typer.Option(help="Interface to listen on.")]
Port = Annotated[int, typer.Option(help="Port of the web app and API.")]


@app.command()
def up(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    demo: Annotated[
        bool, typer.Option(help="Also start the Kommo sandbox and seed a demo organization.")
    ] = False,
    sandbox_port: Annotated[int, typer.Option(help="Port of the Kommo sandbox (--demo).")] = 8001,
) -> None:
    """Run it all in one process: database (embedded if needed), migrations, API, worker."""
    settings = load_settings("platform")
    from agent_platform.runner import PlatformParts, run_platform

    parts = PlatformParts(
        api=True,
        worker=True,
        migrate=True,
        demo=demo,
        host=host,
        port=port,
        sandbox_port=sandbox_port,
    )
    run_async(run_platform(settings, parts))


@app.command()
def api(host: Host = "127.0.0.1", port: Port = 8000) -> None:
    """Run the web app and API."""
    settings = load_settings("api")
    from agent_platform.runner import PlatformParts, run_platform

    run_async(
        run_platform(
            settings, PlatformParts(api=True, worker=False, migrate=False, host=host, port=port)
        )
    )


@app.command()
def worker() -> None:
    """Run a worker (serves /health and /metrics on WORKER_HEALTH_PORT)."""
    settings = load_settings("worker")
    from agent_platform.runner import PlatformParts, run_platform

    run_async(run_platform(settings, PlatformParts(api=False, worker=True, migrate=False)))


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    from agent_platform.db.migrate import upgrade_to_head
    from agent_platform.runner import resolve_database

    settings = load_settings("cli")

    async def upgrade() -> None:
        url, embedded = resolve_database(settings)
        try:
            await upgrade_to_head(url)
        finally:
            if embedded:
                embedded.stop()

    run_async(upgrade())
    typer.echo("Database is at the latest migration.")


@db_app.command("current")
def db_current(
    as_json: JsonOutput = False,
) -> None:
    """Show the database's migration and the code's latest one."""
    from agent_platform.db.migrate import current_revision, head_revision
    from agent_platform.db.session import create_engine
    from agent_platform.runner import resolve_database

    settings = load_settings("cli")
    found: dict[str, str | None] = {}

    async def read() -> None:
        url, embedded = resolve_database(settings)
        engine = create_engine(url, pool_size=1)
        try:
            found["current"] = await current_revision(engine)
        finally:
            await engine.dispose()
            if embedded:
                embedded.stop()

    run_async(read())
    head = head_revision()
    if as_json:
        typer.echo(
            json.dumps(
                {"current": found["current"], "head": head, "at_head": found["current"] == head}
            )
        )
    else:
        state = (
            "up to date" if found["current"] == head else "behind: run `agent-platform db upgrade`"
        )
        typer.echo(f"current: {found['current']}  head: {head}  ({state})")
    if found["current"] != head:
        raise typer.Exit(1)


@kommo_app.command("sandbox")
def kommo_sandbox(
    host: Host = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the sandbox.")] = 8001,
    token: Annotated[
        str | None, typer.Option(help="Access token clients must send (printed when generated).")
    ] = None,
) -> None:
    """Run the Kommo sandbox: a local server speaking the Kommo API v4 the platform uses."""
    import secrets

    import uvicorn

    from agent_platform.crm.sandbox.app import create_sandbox_app

    load_settings("kommo-sandbox")
    access_token = token or secrets.token_urlsafe(24)
    typer.echo(f"Kommo sandbox at http://{host}:{port}  access token: {access_token}")
    uvicorn.run(create_sandbox_app(access_token), host=host, port=port, log_config=None)


@agent_app.command("eval")
def agent_eval(
    agent_id: Annotated[uuid.UUID, typer.Argument(help="The agent's id.")],
    dataset: Annotated[
        Path, typer.Option(help="Cases as JSON Lines (see docs/agents.md).", dir_okay=False)
    ],
    version: Annotated[
        int | None,
        typer.Option(min=1, help="Any saved version, a draft too; default: the published one."),
    ] = None,
    as_json: JsonOutput = False,
) -> None:
    """Run scripted conversations against an agent's version and check what it does.

    Exit code 0 when every case passes, 1 when one fails, 2 when the input is wrong.
    """
    from rich.console import Console
    from rich.progress import Progress

    from agent_platform.agent.eval_console import print_report
    from agent_platform.agent.eval_dataset import DatasetError, parse_dataset
    from agent_platform.agent.evaluation import EvalReport, evaluate, organization_of_agent
    from agent_platform.kit.errors import AppError
    from agent_platform.runner import resolve_database
    from agent_platform.services import open_services

    settings = load_settings("cli")
    try:
        cases = parse_dataset(dataset.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, DatasetError) as exc:
        typer.echo(f"Dataset error: {dataset}: {exc}", err=True)
        raise typer.Exit(2) from None
    found: dict[str, EvalReport] = {}
    # Progress goes to stderr, so stdout holds only the report (or the JSON).
    progress = Progress(console=Console(stderr=True), disable=as_json, transient=True)

    async def run() -> None:
        url, embedded = resolve_database(settings)
        try:
            async with open_services(settings, url) as services:
                organization_id = await organization_of_agent(services, agent_id)
                task = progress.add_task("Evaluating", total=len(cases))
                with progress:
                    found["report"] = await evaluate(
                        services,
                        organization_id,
                        agent_id,
                        cases,
                        version=version,
                        on_case_done=lambda _: progress.advance(task),
                    )
        finally:
            if embedded:
                embedded.stop()

    try:
        run_async(run())
    except AppError as exc:
        typer.echo(f"Cannot evaluate: {exc.message}", err=True)
        raise typer.Exit(2) from None
    report = found["report"]
    if as_json:
        typer.echo(report.model_dump_json())
    else:
        print_report(Console(), report)
    if report.failed:
        raise typer.Exit(1)


@user_app.command("create")
def user_create(
    email: Annotated[str, typer.Argument(help="The address the user signs in with.")],
    organization: Annotated[
        str, typer.Option(help="The organization's name; created when none has this name.")
    ],
    name: Annotated[str, typer.Option(help="The user's display name.")] = "",
    role: Annotated[Role, typer.Option(help="The user's role in the organization.")] = Role.OWNER,
    password_stdin: Annotated[
        bool, typer.Option(help="Read the password from standard input instead of asking.")
    ] = False,
    as_json: JsonOutput = False,
) -> None:
    """Create a user who signs in to the dashboard, in a new or an existing organization.

    Exit code 0 when created, 2 when the input is refused (weak password, taken email).
    """
    import sys

    from agent_platform.db.session import transaction
    from agent_platform.kit.errors import AppError
    from agent_platform.organization.accounts import CreatedAccount, create_account
    from agent_platform.organization.invitations import normalized_email
    from agent_platform.organization.passwords import hash_password, password_problem
    from agent_platform.runner import resolve_database
    from agent_platform.services import open_services

    settings = load_settings("cli")
    try:
        address = normalized_email(email)
    except AppError as exc:
        typer.echo(f"Refused: {exc.message}", err=True)
        raise typer.Exit(2) from None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
    problem = password_problem(password, email=address, name=name)
    if problem is not None:
        typer.echo(f"Refused: {problem}", err=True)
        raise typer.Exit(2)
    password_hash = hash_password(password)
    found: dict[str, CreatedAccount] = {}

    async def create() -> None:
        url, embedded = resolve_database(settings)
        try:
            async with (
                open_services(settings, url) as services,
                transaction(services.sessions) as session,
            ):
                found["account"] = await create_account(
                    session,
                    email=address,
                    name=name.strip(),
                    password_hash=password_hash,
                    organization_name=organization.strip(),
                    role=role,
                )
        finally:
            if embedded:
                embedded.stop()

    try:
        run_async(create())
    except AppError as exc:
        typer.echo(f"Refused: {exc.message}", err=True)
        raise typer.Exit(2) from None
    account = found["account"]
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "user_id": str(account.user_id),
                    "organization_id": str(account.organization_id),
                    "organization_created": account.organization_created,
                    "role": role.value,
                }
            )
        )
    else:
        where = "new" if account.organization_created else "existing"
        typer.echo(f"Created {address} ({role.value}) in the {where} organization {organization}.")


def main() -> None:
    app()
