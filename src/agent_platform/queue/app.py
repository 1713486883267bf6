"""The Procrastinate app, with every platform job registered."""

from __future__ import annotations

import procrastinate

from agent_platform.config import Settings
from agent_platform.db.urls import libpq_url
from agent_platform.queue.registry import register_jobs


def create_queue_app(database_url: str, settings: Settings) -> procrastinate.App:
    # Importing the job modules declares their jobs.
    import agent_platform.agent.follow_up
    import agent_platform.agent.tasks
    import agent_platform.automation.dispatch
    import agent_platform.automation.execution
    import agent_platform.automation.sequences.enrollment
    import agent_platform.crm.kommo.tasks
    import agent_platform.crm.records.tasks
    import agent_platform.ops.backups.schedule
    import agent_platform.queue.maintenance  # noqa: F401

    connector = procrastinate.PsycopgConnector(
        conninfo=libpq_url(database_url),
        kwargs={"connect_timeout": 5},
        min_size=1,
        max_size=max(4, settings.job_concurrency + 2),
    )
    app = procrastinate.App(connector=connector)
    register_jobs(app)
    return app
