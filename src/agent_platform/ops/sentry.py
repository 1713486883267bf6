"""Error tracking with Sentry: off unless SENTRY_DSN is set, and nothing secret leaves the process.

What is reported: unhandled errors of the api (a 500, or an AppError of 5xx such as Kommo being
unreachable), a job's final failure (report_job_failure), and a process's uncaught exception.
Expected client errors (AppError and HTTPException under 500, validation errors) are not.

Every event, transaction and breadcrumb goes through `scrub` before it is sent: values under
names that sound secret are replaced, and so are values that look like credentials wherever
they appear (exception messages, local variables, query strings, log lines).
"""

from __future__ import annotations

import logging
import re
import subprocess
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import sentry_sdk
import structlog
from fastapi.exceptions import RequestValidationError
from sentry_sdk.integrations.fastapi import FastApiIntegration
from sentry_sdk.integrations.httpx import HttpxIntegration
from sentry_sdk.integrations.logging import LoggingIntegration
from sentry_sdk.integrations.sqlalchemy import SqlalchemyIntegration
from sentry_sdk.integrations.starlette import StarletteIntegration
from sentry_sdk.types import Breadcrumb, BreadcrumbHint, Event, Hint, SamplingContext
from starlette.exceptions import HTTPException as StarletteHTTPException

from agent_platform import __version__
from agent_platform.kit.errors import AppError
from agent_platform.ops.logging import current_request_id
from agent_platform.ops.secret_scan.rules import RULES as SECRET_RULES
from agent_platform.ops.secret_scan.rules import Rule as SecretRule

if TYPE_CHECKING:
    from agent_platform.config import Settings

FILTERED = "[Filtered]"

log = structlog.get_logger("sentry")

# Names of fields whose value is never sent, whatever it looks like (headers, form fields,
# JSON keys, local variables, log fields).
_SENSITIVE_NAME = re.compile(
    r"token|secret|passw|key|bearer|authorization|cookie|dsn|credential", re.I
)
# In free text a bare "key" is too common ("KeyError: 'x'") to filter what follows it. A name
# starts where a word starts and is taken whole (possessive): no backtracking through a long
# word, which would take quadratic time.
_SENSITIVE_NAME_IN_TEXT = (
    r"(?<![\w.-])(?=[\w.-]*?(?:token|secret|passw(?:or)?d|api[_-]?key|access[_-]?key"
    r"|private[_-]?key|authorization|cookie|dsn|credential))[\w.-]*+"
)
# Values that are credentials wherever they appear; `name=value` first, so that a value
# already filtered is not matched again.
_CREDENTIAL_VALUES: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(
            rf"({_SENSITIVE_NAME_IN_TEXT}[\"']?\s*[=:]\s*[\"']?)(?:Bearer\s+)?[^\s&;,\"'}})\]]+",
            re.I,
        ),
        rf"\1{FILTERED}",
    ),
    (re.compile(r"\b(Bearer)\s+[A-Za-z0-9._~+/=-]{8,}", re.I), rf"\1 {FILTERED}"),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), FILTERED),  # OpenAI / OpenRouter keys
    (re.compile(r"\bap_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}"), FILTERED),  # this platform's API keys
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), FILTERED),  # JWTs
    # The password of a URL (postgresql://user:password@host, redis://:password@host).
    (
        re.compile(r"(?<![\w+.-])([a-z][a-z0-9+.-]*+://[^:/?#@\s]*+):[^@/?#\s]+@", re.I),
        rf"\1:{FILTERED}@",
    ),
)
# A (name, value) pair's name: a header or field name, bytes' repr included ("b'cookie'").
_FIELD_NAME = re.compile(r"^[\w.'-]+$")
_MIN_KNOWN_SECRET_LENGTH = 8
# Left as they are: a stack frame's source lines (code from the repository, not data), and
# the trace header Sentry routes by (it holds the DSN's public key, which every client has).
_NOT_SCRUBBED = frozenset(
    {"pre_context", "context_line", "post_context", "dynamic_sampling_context"}
)
# Prometheus scrapes and health probes: the SLOs leave them out too (docs/slo.md).
_NOT_TRACED_PATHS = frozenset({"/metrics", "/api/health", "/api/health/live"})
# Fields of a structlog event that the breadcrumb already has, or that say nothing new.
_LOG_FIELDS_NOT_DATA = frozenset({"message", "timestamp", "level", "logger", "service"})


def init_sentry(settings: Settings, service: str) -> bool:
    """Start reporting to SENTRY_DSN, if set; `service` (api, worker, platform) tags each event.

    The asyncio integration is left out on purpose: it reports every exception that leaves
    any task, so every retried attempt of a job and every error a caller handles.
    Errors logged without an exception are breadcrumbs, not events: structlog hands the
    stdlib logger a whole event dict, which Sentry would group into one issue per line.
    """
    dsn = settings.sentry_dsn.get_secret_value() if settings.sentry_dsn else ""
    if not dsn:
        return False
    release = release_name(settings.git_sha)
    sentry_sdk.init(
        dsn=dsn,
        environment=settings.environment.value,
        release=release,
        traces_sampler=partial(_sample_rate, settings.sentry_traces_sample_rate),
        # send_default_pii stays at its default, False: no user identity, IP addresses, cookies
        # or SQL parameters. (This SDK warns when it is passed at all: data_collection replaces it.)
        auto_enabling_integrations=False,
        integrations=[
            StarletteIntegration(),
            FastApiIntegration(),
            SqlalchemyIntegration(),
            HttpxIntegration(),
            LoggingIntegration(level=logging.INFO, event_level=None),
        ],
        before_send=_before_send,
        before_send_transaction=_before_send_transaction,
        before_breadcrumb=_before_breadcrumb,
    )
    sentry_sdk.get_global_scope().set_tag("service", service)
    log.info("sentry_enabled", environment=settings.environment.value, release=release)
    return True


def _sample_rate(rate: float, context: SamplingContext) -> float:
    """SENTRY_TRACES_SAMPLE_RATE, except for probes and scrapes (every few seconds, no user),
    and a trace started upstream keeps the upstream decision."""
    if context.get("parent_sampled") is not None:
        return float(context["parent_sampled"])
    path = (context.get("asgi_scope") or {}).get("path")
    return 0.0 if path in _NOT_TRACED_PATHS else rate


def release_name(git_sha: str | None) -> str:
    """agent-platform@<version>+<sha>: GIT_SHA (set at image build), else the checkout's HEAD."""
    sha = git_sha or _checkout_sha()
    return f"agent-platform@{__version__}+{sha}" if sha else f"agent-platform@{__version__}"


def _checkout_sha() -> str | None:
    try:
        found = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH, when present
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if found.returncode != 0:  # not a checkout (an installed package), or no commit yet
        return None
    return found.stdout.strip() or None


def report_job_failure(
    error: BaseException, *, job_id: int | None, task: str, attempts: int, queue: str
) -> None:
    """Report a job that has failed for good (a no-op when Sentry is not initialised).

    Only the final failure: an attempt that will be retried is expected to pass later, and up
    to eight reports of one failure would bury the others. Retries are counted in
    jobs_processed_total{outcome="retried"}.
    """
    with sentry_sdk.new_scope() as scope:
        scope.set_tag("job.task", task)
        scope.set_tag("job.queue", queue)
        scope.set_tag("job.id", str(job_id))
        request_id = current_request_id()
        if request_id:  # the request that deferred the job: its log lines have it too
            scope.set_tag("request_id", request_id)
        scope.set_context("job", {"id": job_id, "task": task, "attempts": attempts, "queue": queue})
        scope.capture_exception(error)


def scrub(value: Any, known_secrets: frozenset[str] = frozenset()) -> Any:
    """A copy of `value` (an event or any part of one) with every secret replaced by [Filtered].

    `known_secrets` are values to remove wherever they appear, whatever their field's name.
    """
    if isinstance(value, dict):
        return {name: _scrub_field(name, item, known_secrets) for name, item in value.items()}
    if isinstance(value, list | tuple):
        if len(value) == 2 and isinstance(value[0], str) and _FIELD_NAME.match(value[0]):
            # A (name, value) pair: ASGI headers, in a stack frame's `scope` variable.
            return [value[0], _scrub_field(value[0], value[1], known_secrets)]
        return [scrub(item, known_secrets) for item in value]
    if isinstance(value, str):
        return scrub_text(value, known_secrets)
    return value


def scrub_text(text: str, known_secrets: frozenset[str] = frozenset()) -> str:
    """Known secrets, credential-looking values, then whatever the secret scanner's rules find
    (cloud, GitHub, Slack, Stripe keys, private keys...) replaced by [Filtered]."""
    for known in known_secrets:
        text = text.replace(known, FILTERED)
    for pattern, replacement in _CREDENTIAL_VALUES:
        text = pattern.sub(replacement, text)
    for rule in SECRET_RULES:
        if rule.hints and not any(hint in text for hint in rule.hints):
            continue
        if rule.line_hint is not None and not rule.line_hint.search(text):
            continue
        text = rule.pattern.sub(partial(_filter_found_secret, rule), text)
    return text


def _filter_found_secret(rule: SecretRule, match: re.Match[str]) -> str:
    """The match with its secret part (the rule's first secret group that matched) filtered."""
    whole = match.group(0)
    for group in rule.secret_groups:
        secret = match.group(group)
        if secret is None:
            continue
        if rule.accept is not None and not rule.accept(match, secret):
            return whole
        start, end = (position - match.start() for position in match.span(group))
        return whole[:start] + FILTERED + whole[end:]
    return whole


def _scrub_field(name: object, value: Any, known_secrets: frozenset[str]) -> Any:
    if isinstance(name, str):
        if name in _NOT_SCRUBBED:
            return value
        if _SENSITIVE_NAME.search(name) and value not in (None, "", [], {}):
            return FILTERED
    return scrub(value, known_secrets)


def _before_send(event: Event, hint: Hint) -> Event | None:
    # A job's final failure is reported whatever its exception: no client was told about it.
    if "job" not in event.get("contexts", {}) and _is_expected_client_error(hint):
        return None
    return _scrub_event(event)


def _before_send_transaction(event: Event, hint: Hint) -> Event | None:
    return _scrub_event(event)


def _before_breadcrumb(crumb: Breadcrumb, hint: BreadcrumbHint) -> Breadcrumb | None:
    record = hint.get("log_record")
    if isinstance(record, logging.LogRecord) and isinstance(record.msg, dict):
        # A structlog line: its event as the message, its fields (ids, durations) as data.
        crumb["message"] = str(record.msg.get("message", ""))
        crumb["data"] = {
            name: value for name, value in record.msg.items() if name not in _LOG_FIELDS_NOT_DATA
        }
    return cast(Breadcrumb, scrub(crumb))


def _is_expected_client_error(hint: Hint) -> bool:
    exc_info = hint.get("exc_info")
    error = exc_info[1] if exc_info else None
    if isinstance(error, AppError | StarletteHTTPException):
        return error.status_code < 500
    return isinstance(error, RequestValidationError)


def _scrub_event(event: Event) -> Event:
    return cast(Event, scrub(event, _secret_path_parameters(event)))


def _secret_path_parameters(event: Event) -> frozenset[str]:
    """The values of path parameters named like secrets: /webhooks/kommo/{connection_token}.

    The transaction is named by the route's template, so such a segment of the request's URL
    is found without guessing; it is then removed everywhere (the ASGI scope in a frame's
    variables, a log line with the path).
    """
    request = event.get("request")
    template = event.get("transaction")
    if not isinstance(request, dict) or not isinstance(template, str) or "{" not in template:
        return frozenset()
    url = request.get("url")
    if not isinstance(url, str):
        return frozenset()
    segments = urlsplit(url).path.split("/")
    template_segments = template.split("/")
    if len(segments) != len(template_segments):
        return frozenset()
    return frozenset(
        segment
        for segment, parameter in zip(segments, template_segments, strict=True)
        # A short value ("a") would be replaced inside every word of the event.
        if parameter.startswith("{")
        and _SENSITIVE_NAME.search(parameter)
        and len(segment) >= _MIN_KNOWN_SECRET_LENGTH
    )
