"""Structured JSON logs (one line per event) with the ids that let one request be followed."""

from __future__ import annotations

import logging
import sys

import structlog

_SILENCED = {"uvicorn.access": logging.WARNING, "httpx": logging.WARNING}


def configure_logging(*, service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Route structlog and stdlib logging through one JSON renderer on stderr.

    Context bound with `structlog.contextvars` (request_id, job_id, organization_id, …)
    is merged into every line, including lines from libraries that use stdlib logging.
    """
    shared: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
        _add_service(service),
        structlog.processors.EventRenamer("message"),
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if fmt == "json"
        else structlog.dev.ConsoleRenderer(event_key="message")
    )
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.processors.format_exc_info,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=shared,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                renderer,
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name, minimum in _SILENCED.items():
        logging.getLogger(name).setLevel(max(minimum, logging.getLevelName(level)))


def _add_service(service: str) -> structlog.types.Processor:
    def processor(
        _logger: object, _method: str, event: structlog.types.EventDict
    ) -> structlog.types.EventDict:
        event.setdefault("service", service)
        return event

    return processor


def current_request_id() -> str | None:
    """The request id bound to this context: the request's, or the job's that it caused.

    Whatever is deferred or sent from here carries it on, so one id follows a webhook into
    its job, the jobs that job defers, and the Kommo calls they make.
    """
    request_id = structlog.contextvars.get_contextvars().get("request_id")
    return request_id if isinstance(request_id, str) else None
