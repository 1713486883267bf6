"""Environment variables a role needs, judged from Settings alone (no I/O).

Both roles need the same secrets: every process refuses to start without them (config.
ensure_secrets), the api signs sessions and OAuth state with SECRET_KEY and the worker signs
outgoing webhooks with it, and both decrypt stored credentials with ENCRYPTION_KEY. Both
need PUBLIC_BASE_URL (the api's links and OAuth callback; the worker subscribes Kommo's
webhooks to it), the LLM (the api's playground and chat API; the worker's replies) and the
Kommo OAuth client (the api's callback; the worker's token refresh). Only the api serves
browsers (CORS_ALLOWED_ORIGINS); only the worker serves WORKER_HEALTH_PORT.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import SecretStr

from agent_platform.config import Environment, Settings, secret_problem
from agent_platform.ops.preflight.outcome import CheckOutcome, CheckStatus, failed, passed, warning

OPENROUTER_HOST = "openrouter.ai"
# A random key of 32 characters or more has far more different characters than this; fewer
# means a pattern ("aaaa…", "abcabc…") that length alone does not catch.
MIN_DISTINCT_SECRET_CHARACTERS = 10
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "0.0.0.0"})


class Role(StrEnum):
    API = "api"
    WORKER = "worker"
    ALL = "all"

    def includes(self, role: Role) -> bool:
        return self in (role, Role.ALL)


def configuration_checks(settings: Settings, role: Role) -> list[CheckOutcome]:
    checks: list[Callable[[Settings], CheckOutcome]] = [
        _database_url,
        _encryption_key,
        _secret_key,
        _public_base_url,
        _llm,
        _kommo_oauth,
        _redis_url,
        _sentry_dsn,
    ]
    if settings.encryption_key_previous is not None:
        checks.append(_encryption_key_previous)
    if role.includes(Role.API):
        checks.append(_cors_origins)
    if role.includes(Role.WORKER):
        checks.append(_worker_health_port)
    return [check(settings) for check in checks]


def _strict(settings: Settings) -> bool:
    """Staging is held to production's rules: it is where production's problems should show."""
    return settings.environment is not Environment.DEVELOPMENT


def _database_url(settings: Settings) -> CheckOutcome:
    name = "DATABASE_URL"
    if settings.database_url:
        return passed(name, "set")
    if _strict(settings):
        return failed(name, "not set: the embedded PostgreSQL is for development only")
    return passed(name, "not set: the embedded PostgreSQL under DATA_DIR is used")


def secret_weakness(name: str, value: SecretStr | None) -> str | None:
    """Why a secret is unfit outside development: config's rules, then a pattern check."""
    problem = secret_problem(name, value)
    if problem is not None or value is None:
        return problem
    if len(set(value.get_secret_value())) < MIN_DISTINCT_SECRET_CHARACTERS:
        return f"{name} repeats a few characters: generate a random one"
    return None


def _key_check(settings: Settings, name: str, value: SecretStr | None) -> CheckOutcome:
    problem = secret_weakness(name, value)
    if problem is None:
        return passed(name, f"set, {len(value.get_secret_value()) if value else 0} characters")
    if _strict(settings):
        return failed(name, problem)
    return warning(name, f"{problem} (development uses a key generated under DATA_DIR/secrets)")


def _encryption_key(settings: Settings) -> CheckOutcome:
    return _key_check(settings, "ENCRYPTION_KEY", settings.encryption_key)


def _secret_key(settings: Settings) -> CheckOutcome:
    outcome = _key_check(settings, "SECRET_KEY", settings.secret_key)
    same = (
        settings.secret_key is not None
        and settings.encryption_key is not None
        and settings.secret_key.get_secret_value() == settings.encryption_key.get_secret_value()
    )
    if outcome.status is CheckStatus.PASSED and same:
        problem = "SECRET_KEY equals ENCRYPTION_KEY: one leak would expose both; use two keys"
        return (
            failed(outcome.name, problem) if _strict(settings) else warning(outcome.name, problem)
        )
    return outcome


def _encryption_key_previous(settings: Settings) -> CheckOutcome:
    return warning(
        "ENCRYPTION_KEY_PREVIOUS",
        "set: a key rotation is pending; run `agent-platform secrets rotate-key`, then unset it",
    )


def _public_base_url(settings: Settings) -> CheckOutcome:
    name, url = "PUBLIC_BASE_URL", settings.public_base_url
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return failed(name, f"{url!r} is not an http(s) URL")
    if settings.is_production:
        if parts.scheme != "https":
            return failed(name, f"{url} must use https in production (Kommo and browsers)")
        if parts.hostname in _LOOPBACK_HOSTS:
            return failed(name, f"{url} is this machine: Kommo cannot reach it")
    return passed(name, url)


def _llm(settings: Settings) -> CheckOutcome:
    name = "LLM (OPENROUTER_API_KEY, LLM_BASE_URL)"
    key = settings.openrouter_api_key
    if key is not None and key.get_secret_value():
        return passed(name, f"key set for {settings.llm_base_url}")
    if urlsplit(settings.llm_base_url).hostname != OPENROUTER_HOST:
        return passed(name, f"{settings.llm_base_url} without a key (self-hosted)")
    return warning(
        name,
        "no OPENROUTER_API_KEY and LLM_BASE_URL is OpenRouter: agents answer from the "
        "knowledge base and FAQ only, and hand over otherwise",
    )


def _kommo_oauth(settings: Settings) -> CheckOutcome:
    name = "Kommo OAuth (KOMMO_CLIENT_*)"
    secret = settings.kommo_client_secret
    given = {
        "KOMMO_CLIENT_ID": bool(settings.kommo_client_id),
        "KOMMO_CLIENT_SECRET": secret is not None and bool(secret.get_secret_value()),
        "KOMMO_REDIRECT_URI": bool(settings.kommo_redirect_uri),
    }
    if not any(given.values()):
        return warning(name, "not set: Kommo accounts connect by long-lived token only")
    missing = [variable for variable, present in given.items() if not present]
    if missing:
        return failed(name, f"OAuth needs all three; missing {', '.join(missing)}")
    redirect = settings.kommo_redirect_uri or ""
    if settings.is_production and urlsplit(redirect).scheme != "https":
        return failed(name, f"KOMMO_REDIRECT_URI {redirect} must use https in production")
    return passed(name, "set")


def _redis_url(settings: Settings) -> CheckOutcome:
    if settings.redis_url:
        return passed("REDIS_URL", "set")
    if settings.is_production:
        return warning(
            "REDIS_URL",
            "not set: cache, rate limits and locks are per process; set it when more than "
            "one process runs",
        )
    return passed("REDIS_URL", "not set: in-process cache, rate limits and locks")


def _sentry_dsn(settings: Settings) -> CheckOutcome:
    if settings.sentry_dsn is not None or not settings.is_production:
        return passed("SENTRY_DSN", "set" if settings.sentry_dsn else "not set")
    return warning("SENTRY_DSN", "not set: errors are only in the logs")


def _cors_origins(settings: Settings) -> CheckOutcome:
    name = "CORS_ALLOWED_ORIGINS"
    plain = [origin for origin in settings.cors_allowed_origins if origin.startswith("http:")]
    if settings.is_production and plain:
        return warning(name, f"plain http origins in production: {', '.join(plain)}")
    return passed(name, ", ".join(settings.cors_allowed_origins) or "none (same origin only)")


def _worker_health_port(settings: Settings) -> CheckOutcome:
    port = settings.worker_health_port
    if not 1 <= port <= 65535:
        return failed("WORKER_HEALTH_PORT", f"{port} is not a TCP port (1-65535)")
    return passed("WORKER_HEALTH_PORT", str(port))
