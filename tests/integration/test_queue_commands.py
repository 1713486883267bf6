"""`agent-platform queue …` run as the operator runs it, on real jobs in the test database."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import procrastinate
import psycopg
from procrastinate import utils as procrastinate_utils

from agent_platform.db.urls import libpq_url
from tests.support.processes import platform_env, run_cli

QUEUE = "agent-jobs"


def _env(database_url: str, tmp_path: Path) -> dict[str, str]:
    return platform_env(DATABASE_URL=database_url, DATA_DIR=str(tmp_path / "data"))


async def _defer(
    database_url: str, count: int, *, task: str = "test.noop", delay: timedelta | None = None
) -> list[int]:
    queue = procrastinate.App(
        connector=procrastinate.PsycopgConnector(conninfo=libpq_url(database_url))
    )
    schedule_at = None if delay is None else procrastinate_utils.utcnow() + delay
    async with queue.open_async():
        deferrer = queue.configure_task(task, queue=QUEUE, schedule_at=schedule_at)
        return [await deferrer.defer_async() for _ in range(count)]


def _fail(database_url: str, job_ids: list[int], *, ago: timedelta = timedelta(0)) -> None:
    """Take jobs the way a worker does (todo → doing → failed), the failure `ago` long ago."""
    with psycopg.connect(libpq_url(database_url)) as connection:
        for status in ("doing", "failed"):
            connection.execute(
                "UPDATE procrastinate_jobs SET status = %s WHERE id = ANY(%s)", (status, job_ids)
            )
        connection.execute(
            "UPDATE procrastinate_events SET at = now() - %s "
            "WHERE job_id = ANY(%s) AND type = 'failed'",
            (ago, job_ids),
        )


def _jobs(database_url: str) -> dict[int, tuple[str, int]]:
    with psycopg.connect(libpq_url(database_url)) as connection:
        rows = connection.execute("SELECT id, status, attempts FROM procrastinate_jobs").fetchall()
    return {job_id: (status, attempts) for job_id, status, attempts in rows}


async def test_monitor_exit_code_follows_the_waiting_jobs(
    clean_database: str, tmp_path: Path
) -> None:
    env = _env(clean_database, tmp_path)
    thresholds = ["--warning", "2", "--critical", "4"]
    # Delayed jobs (a follow-up tomorrow) are not a backlog: they never count as waiting.
    await _defer(clean_database, 3, delay=timedelta(hours=1))
    await _defer(clean_database, 1)

    calm = run_cli(["queue", "monitor", *thresholds, "--json"], env=env, cwd=tmp_path)
    assert calm.returncode == 0, calm.stderr
    report = json.loads(calm.stdout)
    assert report["status"] == "ok"
    assert report["thresholds"] == {"warning": 2, "critical": 4}
    [figures] = report["queues"]
    assert figures | {"oldest_waiting_seconds": 0} == {
        "queue": QUEUE,
        "waiting": 1,
        "delayed": 3,
        "active": 0,
        "failed": 0,
        "oldest_waiting_seconds": 0,
        "status": "ok",
    }

    await _defer(clean_database, 1)
    busy = run_cli(["queue", "monitor", *thresholds, "--json"], env=env, cwd=tmp_path)
    assert busy.returncode == 1, busy.stderr
    assert json.loads(busy.stdout)["status"] == "warning"

    await _defer(clean_database, 2)
    flooded = run_cli(["queue", "monitor", *thresholds], env=env, cwd=tmp_path)
    assert flooded.returncode == 2, flooded.stderr
    assert "Status: CRITICAL" in flooded.stdout
    assert QUEUE in flooded.stdout


def test_monitor_on_an_unreachable_database_exits_3_with_one_line(tmp_path: Path) -> None:
    closed_port = "postgresql://postgres@127.0.0.1:1/nowhere"
    result = run_cli(["queue", "monitor", "--json"], env=_env(closed_port, tmp_path), cwd=tmp_path)
    assert result.returncode == 3
    said = [line for line in result.stderr.splitlines() if not line.startswith("{")]
    assert len(said) == 1, result.stderr
    assert said[0].startswith("Cannot read the queue from the database:")
    assert "Connection refused" in said[0]
    # A monitoring agent reading --json still gets one document.
    assert json.loads(result.stdout) == {"status": "unknown", "error": said[0].split(": ", 1)[1]}


async def test_retry_failed_puts_back_the_chosen_failed_jobs(
    clean_database: str, tmp_path: Path
) -> None:
    env = _env(clean_database, tmp_path)
    recent = await _defer(clean_database, 2, task="test.sync")
    old = await _defer(clean_database, 1, task="test.sync")
    other = await _defer(clean_database, 1, task="test.other")
    _fail(clean_database, recent + other)
    _fail(clean_database, old, ago=timedelta(hours=3))

    chosen = run_cli(
        ["queue", "retry-failed", "--task", "test.sync", "--since", "2h", "--json"],
        env=env,
        cwd=tmp_path,
    )
    assert chosen.returncode == 0, chosen.stderr
    assert json.loads(chosen.stdout) == {"retried": 2, "skipped": 0}
    jobs = _jobs(clean_database)
    # Procrastinate counts the retry as an attempt.
    assert {jobs[job_id] for job_id in recent} == {("todo", 1)}
    assert {jobs[job_id][0] for job_id in old + other} == {"failed"}

    rest = run_cli(["queue", "retry-failed"], env=env, cwd=tmp_path)
    assert rest.returncode == 0, rest.stderr
    assert "Put 2 failed job(s) back in the queue." in rest.stdout
    assert {status for status, _ in _jobs(clean_database).values()} == {"todo"}

    stats = run_cli(["queue", "stats", "--json"], env=env, cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    figures = json.loads(stats.stdout)
    assert [queue["waiting"] for queue in figures["queues"]] == [4]
    assert figures["tasks_last_24h"] == [
        {"task": "test.other", "status": "todo", "jobs": 1},
        {"task": "test.sync", "status": "todo", "jobs": 3},
    ]
