"""Settings from the environment; the names are part of the contract (docs/configuration.md)."""

from __future__ import annotations

import re
import secrets
from enum import StrEnum
from pathlib import Path

import structlog
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agent_platform.llm.pricing import TokenPrices

MIN_SECRET_LENGTH = 32
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?$")

# Values shipped in examples and tutorials: a key equal to one of these is as good as public.
KNOWN_DEFAULT_SECRETS = frozenset(
    {
        "change-me",
        "changeme",
        "secret",
        "your-secret-key",
        "your-encryption-key",
        "dev-secret-key",
        "replace-me-with-at-least-32-random-characters",
    }
)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    STAGING = "staging"
    PRODUCTION = "production"


class WeakSecretError(Exception):
    """A secret that must not be used outside development (one line names the variable)."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    environment: Environment = Environment.DEVELOPMENT
    data_dir: Path = Path(".data")
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|console)$")
    public_base_url: str = "http://127.0.0.1:8000"
    # Browser origins (scheme://host[:port]) whose pages may call /api/ (a JSON list).
    cors_allowed_origins: tuple[str, ...] = ()

    database_url: str | None = None
    redis_url: str | None = None

    encryption_key: SecretStr | None = None
    encryption_key_previous: SecretStr | None = None
    secret_key: SecretStr | None = None

    openrouter_api_key: SecretStr | None = None
    llm_base_url: str = "https://openrouter.ai/api/v1"
    llm_default_model: str = "openai/gpt-4o-mini"
    # Each attempt's limit; a timed-out attempt is retried like a 5xx.
    llm_timeout_seconds: float = Field(default=30.0, gt=0)
    # Retries of one model (on 429, 5xx, timeouts, connection errors) before the next fallback.
    llm_max_retries: int = Field(default=2, ge=0, le=10)
    llm_retry_base_seconds: float = Field(default=0.5, gt=0)
    # The longest wait before a retry; a Retry-After asking for longer moves to the next model.
    llm_retry_max_seconds: float = Field(default=10.0, gt=0)
    # Tried in order after an agent's own model stays unavailable (a JSON list).
    llm_fallback_models: tuple[str, ...] = ()
    # USD per million tokens by model (JSON), replacing or adding to llm/prices.toml.
    llm_prices: dict[str, TokenPrices] = {}
    # Chat API requests (POST /api/v1/chat) per API key per minute, shared through Redis.
    chat_rate_limit_per_minute: int = Field(default=60, ge=1, le=10_000)

    job_queue_name: str = "agent-jobs"
    job_concurrency: int = Field(default=5, ge=1, le=200)
    worker_health_port: int = 9091
    succeeded_job_retention_hours: int = Field(default=72, ge=1)
    # A running job whose worker has sent no heartbeat for this long is re-queued.
    job_stalled_after_seconds: float = Field(default=30.0, ge=2.0)
    job_stalled_check_seconds: float = Field(default=10.0, gt=0)

    # Error tracking: off unless a DSN is set. The release names the version and GIT_SHA
    # (set at image build; in a source checkout, git is asked).
    sentry_dsn: SecretStr | None = None
    sentry_traces_sample_rate: float = Field(default=0.1, ge=0.0, le=1.0)
    git_sha: str | None = None

    # Backups (`agent-platform backup …`): where they are kept, an optional key that
    # encrypts them, and a cron expression (UTC) for the worker's own daily backup.
    backup_dir: Path | None = None
    backup_encryption_key: SecretStr | None = None
    backup_schedule: str | None = None
    backup_keep_daily: int = Field(default=7, ge=0)
    backup_keep_weekly: int = Field(default=4, ge=0)
    backup_keep_monthly: int = Field(default=6, ge=0)
    # Disaster-recovery targets `agent-platform dr drill` measures against.
    dr_rto_target_minutes: float = Field(default=60.0, gt=0)
    dr_rpo_target_hours: float = Field(default=24.0, gt=0)

    kommo_client_id: str | None = None
    kommo_client_secret: SecretStr | None = None
    kommo_redirect_uri: str | None = None
    # The page where an admin grants access; amoCRM accounts use https://www.amocrm.ru/oauth.
    kommo_oauth_url: str = "https://www.kommo.com/oauth"
    # A Kommo sandbox trusted like a Kommo domain (development and tests): OAuth callbacks
    # naming it as referer exchange their code there, over plain HTTP if its URL says so.
    kommo_sandbox_url: str | None = None
    # Kommo allows 7 requests per second per account; all processes share this budget.
    kommo_requests_per_second: int = Field(default=7, ge=1, le=50)
    # Access tokens are refreshed this long before they expire, not after a 401.
    kommo_token_refresh_margin_seconds: int = Field(default=300, ge=0)
    # Reconnecting an account whose tokens Kommo had refused answers, per lead, the newest
    # customer message left unanswered meanwhile if it is at most this old (0: answer none).
    kommo_reconnect_reply_window_minutes: int = Field(default=60, ge=0)

    # Knowledge base. Pages fetched by URL may not reach private networks (SSRF) unless this
    # allows it: for an intranet wiki, or tests against a local server.
    allow_private_network_fetch: bool = False
    web_fetch_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    web_fetch_max_bytes: int = Field(default=5_000_000, ge=1)
    knowledge_max_document_bytes: int = Field(default=10_000_000, ge=1)
    # An OpenAI-compatible /embeddings endpoint; with it (and pgvector) search is hybrid.
    embeddings_base_url: str | None = None
    embeddings_model: str = "text-embedding-3-small"
    embeddings_api_key: SecretStr | None = None

    # Automation. Webhook actions may not call private or loopback addresses (SSRF) unless
    # this allows it: a service on the same private network, or tests against a local server.
    automation_webhook_allow_private_networks: bool = False
    automation_webhook_timeout_seconds: float = Field(default=10.0, gt=0, le=60)
    automation_run_retention_days: int = Field(default=30, ge=1)

    @field_validator("cors_allowed_origins")
    @classmethod
    def _plain_origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        # A browser sends the origin without a path or trailing slash: any other spelling
        # would silently never match, and "*" would open the API to every site.
        for origin in origins:
            if not _ORIGIN.match(origin):
                raise ValueError(
                    f"{origin!r} is not an origin: write scheme://host[:port], e.g. "
                    "https://crm.example.com, without a path or a trailing slash"
                )
        return origins

    @field_validator("log_level")
    @classmethod
    def _upper_log_level(cls, value: str) -> str:
        return value.upper()

    @property
    def is_production(self) -> bool:
        return self.environment is Environment.PRODUCTION

    @property
    def backup_directory(self) -> Path:
        """BACKUP_DIR, else `backups` under DATA_DIR."""
        return self.backup_dir or self.data_dir / "backups"


def secret_problem(name: str, value: SecretStr | None) -> str | None:
    """Why `value` is unfit for `name` outside development, or None when it is fine."""
    if value is None or not value.get_secret_value():
        return f"{name} is not set"
    raw = value.get_secret_value()
    if raw.lower() in KNOWN_DEFAULT_SECRETS:
        return f"{name} is a known default value; generate a new one"
    if len(raw) < MIN_SECRET_LENGTH:
        return f"{name} is shorter than {MIN_SECRET_LENGTH} characters"
    return None


REQUIRED_SECRETS = ("encryption_key", "secret_key")


def ensure_secrets(settings: Settings) -> Settings:
    """Refuse weak secrets in staging/production; in development create missing ones once.

    Development keys are kept under DATA_DIR so that encrypted values stay readable
    across restarts.
    """
    log = structlog.get_logger("config")
    updates: dict[str, SecretStr] = {}
    for field in REQUIRED_SECRETS:
        name = field.upper()
        problem = secret_problem(name, getattr(settings, field))
        if problem is None:
            continue
        if settings.environment is not Environment.DEVELOPMENT:
            raise WeakSecretError(problem)
        key_file = settings.data_dir / "secrets" / field
        if not key_file.exists():
            key_file.parent.mkdir(parents=True, exist_ok=True)
            key_file.write_text(secrets.token_urlsafe(48))
            key_file.chmod(0o600)
            log.warning("generated_development_secret", variable=name, path=str(key_file))
        updates[field] = SecretStr(key_file.read_text().strip())
    return settings.model_copy(update=updates) if updates else settings
