"""Texts the secret scanner must report (one rule each) and texts it must leave alone.

Secrets here are random values made at import time (seeded: the same on every run), so this
file holds no secret-shaped literal and the repository's own scan needs no allow-list for it.
"""

from __future__ import annotations

import base64
import json
import random
import string

_random = random.Random(8)
HEX = "0123456789abcdef"
ALNUM = string.ascii_letters + string.digits
UPPER_ALNUM = string.ascii_uppercase + string.digits
BASE64 = ALNUM + "+/"
URLSAFE = ALNUM + "-_"


def fake(alphabet: str, length: int) -> str:
    """Random characters; never one character five times in a row (that reads as `xxxxx`)."""
    while True:
        value = "".join(_random.choice(alphabet) for _ in range(length))
        if not any(c * 5 in value for c in set(value)):
            return value


def b64url_json(document: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


def pem_body(lines: int) -> str:
    return "\n".join(fake(BASE64, 64) for _ in range(lines))


KOMMO_TOKEN = ".".join(
    [
        b64url_json({"typ": "JWT", "alg": "RS256", "jti": fake(HEX, 40)}),
        b64url_json({"aud": fake(HEX, 36), "account_id": 31000001, "scopes": ["crm"]}),
        fake(URLSAFE, 342),
    ]
)

# (rule, text): the text holds one secret that this rule reports.
TRUE_POSITIVES: list[tuple[str, str]] = [
    ("openrouter-api-key", f"OPENROUTER_API_KEY=sk-or-v1-{fake(HEX, 64)}"),
    ("anthropic-api-key", f'client = Anthropic(api_key="sk-ant-api03-{fake(URLSAFE, 93)}")'),
    ("openai-api-key", f"OPENAI_API_KEY=sk-{fake(ALNUM, 48)}"),
    ("openai-api-key", f"llm:\n  key: sk-proj-{fake(URLSAFE, 120)}\n"),
    ("sentry-dsn", f"SENTRY_DSN=https://{fake(HEX, 32)}@o450123.ingest.sentry.io/5501234"),
    ("sentry-dsn", f'dsn = "https://{fake(HEX, 32)}@sentry.internal.example:9000/3"'),
    ("sentry-auth-token", f"SENTRY_AUTH_TOKEN=sntrys_{fake(BASE64, 120)}_{fake(ALNUM, 43)}"),
    ("sentry-auth-token", f"sentry-cli --auth-token sntryu_{fake(HEX, 64)} releases new"),
    ("jwt", f'headers = {{"Authorization": "Bearer {KOMMO_TOKEN}"}}'),
    ("aws-access-key-id", f"aws_access_key_id = AKIA{fake(UPPER_ALNUM, 16)}"),
    ("aws-secret-access-key", f"aws_secret_access_key = {fake(BASE64, 40)}"),
    ("gcp-service-account", f'{{"type": "service_account", "private_key_id": "{fake(HEX, 40)}"}}'),
    ("gcp-api-key", f"GOOGLE_MAPS=AIza{fake(URLSAFE, 35)}"),
    (
        "azure-storage-key",
        "DefaultEndpointsProtocol=https;AccountName=crmfiles;"
        f"AccountKey={fake(BASE64, 86)}==;EndpointSuffix=core.windows.net",
    ),
    ("github-token", f"git clone https://ghp_{fake(ALNUM, 36)}@github.com/acme/crm.git"),
    ("github-token", f"GH_TOKEN=github_pat_{fake(ALNUM, 22)}_{fake(ALNUM, 59)}"),
    ("gitlab-token", f"CI_PUSH_TOKEN=glpat-{fake(ALNUM, 20)}"),
    ("slack-token", f"SLACK_BOT=xoxb-{fake(string.digits, 12)}-{fake(ALNUM, 24)}"),
    (
        "slack-token",
        f"url: https://hooks.slack.com/services/T{fake(UPPER_ALNUM, 8)}/B{fake(UPPER_ALNUM, 10)}"
        f"/{fake(ALNUM, 24)}",
    ),
    ("stripe-secret-key", f"stripe.api_key = sk_live_{fake(ALNUM, 24)}"),
    (
        "private-key",
        f"-----BEGIN RSA PRIVATE KEY-----\n{pem_body(4)}\n-----END RSA PRIVATE KEY-----\n",
    ),
    (
        "private-key",
        f"-----BEGIN OPENSSH PRIVATE KEY-----\n{pem_body(3)}\n-----END OPENSSH PRIVATE KEY-----\n",
    ),
    (
        # A service-account JSON keeps the key on one line with escaped newlines.
        "private-key",
        '{"private_key": "-----BEGIN PRIVATE KEY-----\\n'
        + pem_body(3).replace("\n", "\\n")
        + '\\n-----END PRIVATE KEY-----\\n"}',
    ),
    ("database-url-password", f"DATABASE_URL=postgresql://app:{fake(ALNUM, 20)}@db:5432/app"),
    (
        "database-url-password",
        f'engine = create_async_engine("postgresql+psycopg://crm:{fake(ALNUM, 16)}@10.0.0.5/crm")',
    ),
    ("database-url-password", f"REDIS_URL=redis://:{fake(ALNUM, 24)}@cache.internal:6379/0"),
    ("database-url-password", f"url: mysql://root:{fake(ALNUM, 14)}@mysql/legacy"),
    ("secret-assignment", f"ENCRYPTION_KEY={fake(URLSAFE, 48)}"),
    ("secret-assignment", f"export KOMMO_CLIENT_SECRET='{fake(ALNUM, 64)}'"),
    ("secret-assignment", f"kommo:\n  client_secret: {fake(ALNUM, 40)}\n"),
    ("secret-assignment", f'[llm]\napi_key = "{fake(ALNUM, 32)}"\n'),
    ("secret-assignment", f'{{"accessToken": "{fake(URLSAFE, 40)}"}}'),
    ("secret-assignment", f'DB_PASSWORD: str = "{fake(ALNUM, 18)}"'),
    ("secret-assignment", f"    password={fake(ALNUM, 16)!r},"),
]

# Placeholders, documentation examples and code that only looks like a secret.
FALSE_POSITIVES: list[str] = [
    "OPENROUTER_API_KEY=sk-or-v1-...",
    "OPENROUTER_API_KEY=sk-or-v1-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "OPENAI_API_KEY=sk-...",
    'api_key = "sk-..."',
    "OPENROUTER_API_KEY=<your-openrouter-key>",
    "OPENROUTER_API_KEY=${OPENROUTER_API_KEY}",
    "SECRET_KEY=change-me",
    "ENCRYPTION_KEY=change-me-to-32-random-characters-1",
    'SECRET_KEY = "{{ secret_key }}"',
    "api_key: $LLM_API_KEY",
    "ENCRYPTION_KEY=",
    "ENCRYPTION_KEY=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1",
    'password = "hunter2"',
    "password1234 = 'not-the-password-1'",
    'KOMMO_CLIENT_SECRET="your_kommo_client_secret_2"',
    "SENTRY_DSN=https://<key>@o0.ingest.sentry.io/0",
    "SENTRY_DSN=https://examplePublicKey@o0.ingest.sentry.io/0",
    "DATABASE_URL=postgresql://user:password@host:5432/dbname",
    "DATABASE_URL=postgresql://postgres:postgres@localhost:5432/test",
    "postgresql://postgres@127.0.0.1:5432/test",
    "postgresql://postgres:@/postgres?host=/tmp/bench",
    "postgresql://${DB_USER}:${DB_PASSWORD}@db/app",
    'f"postgresql://{user}:{db_password}@{host}/{name}"',
    "redis://:<password>@redis:6379/0",
    "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
    "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "xoxb-your-bot-token",
    "Keys look like `-----BEGIN RSA PRIVATE KEY-----` followed by base64 lines.",
    "-----BEGIN PRIVATE KEY-----\n...\n-----END PRIVATE KEY-----",
    # JWT-shaped but unsigned: a signature is at least 20 characters.
    "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJhY2NvdW50X2lkIjozMDAwMDAwMX0.c2ln",
    # Code that names a secret without holding one.
    "api_key = settings.openrouter_api_key.get_secret_value()",
    "token = secrets.token_urlsafe(32)",
    "SECRET_KEY = os.environ['SECRET_KEY']",
    "password_hash = hasher.hash(password)",
    'cache_key = f"agent:{agent_id}:v2"',
    'idempotency_key = "reply-7f3a9c2e4b1d8f6a0c5e"',
    "'dedupe_key': 'message-c1c43ac8-82a6-4be9-a05d'",
    "max_tokens = 4096",
    "KOMMO_TOKEN_REFRESH_MARGIN_SECONDS=300",
    'next_page_token = "CAEQABoKCgQ4NTE2EAE"',
    "task-manager-sk-1234 = 'task'",
]
