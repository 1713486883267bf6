"""Running the deferred jobs in a test: the real queue and worker, stopped once it is empty."""

from __future__ import annotations

from agent_platform.services import Services


async def run_queued_jobs(services: Services) -> None:
    """Run every job that is due, as a worker does, and return when none is left.

    A job that fails and is retried waits for its next attempt in the queue: it is not run
    again here.
    """
    await services.queue.run_worker_async(
        queues=[services.settings.job_queue_name],
        wait=False,
        install_signal_handlers=False,
        additional_context={"services": services},
    )
