"""What a secret looks like: one rule per kind of credential, and what a placeholder looks like.

Rules are plain regular expressions over a file's whole text (a private key spans lines).
Each names the part that is the secret (group `secret`, or the first of `secret_groups`
that matched), which is what is fingerprinted, checked for placeholders and masked.
Specific rules come first: where two rules find the same text, the first one reports it.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

# Words that mark a value written to be replaced, not a credential (docs, examples, tests).
_PLACEHOLDER_WORDS = (
    "example",
    "changeme",
    "change-me",
    "change_me",
    "replace-me",
    "replace_me",
    "placeholder",
    "dummy",
    "fake",
    "sample",
    "redacted",
    "your-",
    "your_",
    "xxxx",
    "****",
    "...",
    "…",
    "123456789",
    "abcdefghij",
)
# Templating, variable references and scrubbed values: `${VAR}`, `$VAR`, `{{ var }}`,
# `{name}`, `<your-key>`, `%(key)s`, Sentry's `[Filtered]`.
_TEMPLATE_MARKS = ("$(", "{", "}", "<", ">", "%(", "[Filtered]")
# The same character five times in a row: `aaaaa`, `00000`; random keys almost never do it.
_RUN_OF_ONE_CHARACTER = re.compile(r"(.)\1{4}")
# Passwords in URLs that are well-known defaults or words standing for a password.
_STAND_IN_PASSWORDS = frozenset(
    {"password", "passwd", "pass", "pwd", "secret", "postgres", "root", "admin", "user"}
)


def looks_like_placeholder(value: str) -> bool:
    lowered = value.lower()
    return (
        value.startswith("$")
        or any(mark in value for mark in _TEMPLATE_MARKS)
        or any(word in lowered for word in _PLACEHOLDER_WORDS)
        or _RUN_OF_ONE_CHARACTER.search(value) is not None
    )


def shannon_entropy(value: str) -> float:
    """Bits per character: about 4 for random hex, 5 to 6 for random base64, under 3.5 for words."""
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


@dataclass(frozen=True)
class Rule:
    name: str
    pattern: re.Pattern[str]
    # Cheap pre-checks, for speed: the text must contain one of these strings...
    hints: tuple[str, ...] = ()
    # ...and the pattern only runs on the lines this finds (None: on the whole text).
    line_hint: re.Pattern[str] | None = None
    secret_groups: tuple[str, ...] = ("secret",)
    # Beyond the pattern: does this match hold a real-looking secret?
    accept: Callable[[re.Match[str], str], bool] | None = None


def _has_letters_and_digits(value: str) -> bool:
    return any(c.isdigit() for c in value) and any(c.isalpha() for c in value)


def _not_a_stand_in_password(match: re.Match[str], secret: str) -> bool:
    return secret.lower() not in _STAND_IN_PASSWORDS and secret != match.group("user")


# Names that end like a secret's but hold something else (a cache key, a page token...).
_NOT_SECRET_NAMES = re.compile(
    r"(?i)(?:idempotency|cache|sort|primary|foreign|partition|lock|public|dedupe?|lookup|hash"
    r"|group|row|map|dict|unique|cursor|page|translation|i18n|message|field|column|header"
    r"|query|param|state|csrf|next|continuation|max|min)[_.-]?(?:key|token)s?$"
)
# An unquoted value must be one token of key-like characters, not an expression.
_BARE_TOKEN = re.compile(r"[A-Za-z0-9+/=_.~@%!*^&-]+")
_DOTTED_NAME = re.compile(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+")
_MIN_ASSIGNED_LENGTH = 12
_MIN_ASSIGNED_ENTROPY = 3.5
# A value that names itself (`client-secret-1`, `not-the-password`) was made up by a person;
# generated keys never spell these words.
_SELF_DESCRIBING = re.compile(r"(?i)secret|passw|token|api[_-]?key")


def _high_entropy_assignment(match: re.Match[str], secret: str) -> bool:
    if _NOT_SECRET_NAMES.search(match.group("name")):
        return False
    if match.group("bare") is not None and (
        not _BARE_TOKEN.fullmatch(secret) or _DOTTED_NAME.fullmatch(secret)
    ):
        return False
    return (
        len(secret) >= _MIN_ASSIGNED_LENGTH
        and not _SELF_DESCRIBING.search(secret)
        and _has_letters_and_digits(secret)
        and shannon_entropy(secret) >= _MIN_ASSIGNED_ENTROPY
    )


def _mixed_characters(_match: re.Match[str], secret: str) -> bool:
    return _has_letters_and_digits(secret)


# Not preceded by a character that would make the match the tail of a longer word.
_START = r"(?<![A-Za-z0-9_-])"
_END = r"(?![A-Za-z0-9_-])"

RULES: tuple[Rule, ...] = (
    # A PEM private key (RSA, EC, DSA, OpenSSH, PKCS#8), also inside JSON
    Rule(
        "private-key",
        re.compile(
            r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
            r"(?:\\n|\s)+(?:[A-Za-z-]+: [^\n]*(?:\\n|\s)+)*"
            r"(?P<secret>[A-Za-z0-9+/=]{40,})"
        ),
        hints=("PRIVATE KEY",),
    ),
    # OpenRouter API key (sk-or-v1-…)
    Rule(
        "openrouter-api-key",
        re.compile(_START + r"(?P<secret>sk-or-v1-[A-Za-z0-9]{32,})" + _END),
        hints=("sk-or-v1-",),
    ),
    # Anthropic API key (sk-ant-…)
    Rule(
        "anthropic-api-key",
        re.compile(_START + r"(?P<secret>sk-ant-[A-Za-z0-9_-]{32,})" + _END),
        hints=("sk-ant-",),
    ),
    # OpenAI API key (sk-…, sk-proj-…, sk-svcacct-…)
    Rule(
        "openai-api-key",
        re.compile(_START + r"(?P<secret>sk-(?!or-|ant-)[A-Za-z0-9_-]{32,})" + _END),
        accept=_mixed_characters,
        hints=("sk-",),
    ),
    # Sentry DSN with its key (https://<key>@o1.ingest.sentry.io/1)
    Rule(
        "sentry-dsn",
        re.compile(
            r"https?://(?P<secret>[0-9a-f]{32})(?::[0-9a-f]{32})?@[A-Za-z0-9.-]+(?::\d+)?/\d+"
        ),
        hints=("@",),
    ),
    # Sentry organization or user auth token (sntrys_…, sntryu_…)
    Rule(
        "sentry-auth-token",
        re.compile(_START + r"(?P<secret>sntrys_[A-Za-z0-9+/=_]{40,}|sntryu_[0-9a-f]{64})" + _END),
        hints=("sntry",),
    ),
    # JSON Web Token, such as a Kommo long-lived token (eyJ….eyJ….signature)
    Rule(
        "jwt",
        re.compile(
            _START
            + r"(?P<secret>eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{20,})"
            + _END
        ),
        hints=("eyJ",),
    ),
    # AWS access key id (AKIA…, ASIA…)
    Rule(
        "aws-access-key-id",
        re.compile(r"\b(?P<secret>(?:AKIA|ASIA|ABIA|ACCA)[0-9A-Z]{16})\b"),
        hints=("AKIA", "ASIA", "ABIA", "ACCA"),
    ),
    # AWS secret access key assigned to aws_secret_access_key
    Rule(
        "aws-secret-access-key",
        re.compile(
            r"(?i:aws_?secret_?(?:access_?)?key)[\"']?\s*[:=]\s*[\"']?"
            r"(?P<secret>[A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
        ),
    ),
    # Google Cloud service-account key file (private_key_id)
    Rule(
        "gcp-service-account",
        re.compile(r"\"private_key_id\"\s*:\s*\"(?P<secret>[0-9a-f]{40})\""),
        hints=("private_key_id",),
    ),
    # Google Cloud API key (AIza…)
    Rule(
        "gcp-api-key",
        re.compile(_START + r"(?P<secret>AIza[0-9A-Za-z_-]{35})" + _END),
        hints=("AIza",),
    ),
    # Azure storage account key in a connection string (AccountKey=…)
    Rule(
        "azure-storage-key",
        re.compile(r"AccountKey=(?P<secret>[A-Za-z0-9+/]{86}==)"),
        hints=("AccountKey=",),
    ),
    # GitHub token (ghp_, gho_, ghu_, ghs_, ghr_, github_pat_)
    Rule(
        "github-token",
        re.compile(
            _START + r"(?P<secret>gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{60,})" + _END
        ),
        hints=("gh", "github_pat_"),
    ),
    # GitLab personal access token (glpat-…)
    Rule(
        "gitlab-token",
        re.compile(_START + r"(?P<secret>glpat-[A-Za-z0-9_-]{20})" + _END),
        hints=("glpat-",),
    ),
    # Slack token (xoxb-, xoxp-, …) or incoming-webhook URL
    Rule(
        "slack-token",
        re.compile(
            _START + r"(?P<secret>xox[abposr]-[A-Za-z0-9-]{10,}"
            r"|https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]{20,})"
        ),
        hints=("xox", "hooks.slack.com"),
    ),
    # Stripe live secret or restricted key (sk_live_…, rk_live_…)
    Rule(
        "stripe-secret-key",
        re.compile(_START + r"(?P<secret>[sr]k_live_[A-Za-z0-9]{20,})" + _END),
        hints=("k_live_",),
    ),
    # Database or broker URL with a password (postgresql://user:pass@…, redis://:pass@…)
    Rule(
        "database-url-password",
        re.compile(
            r"\b(?:postgres(?:ql)?|mysql|mariadb|redis|rediss|mongodb(?:\+srv)?|amqps?|mssql)"
            r"(?:\+\w+)?://(?P<user>[^\s:/@'\"`]*):(?P<secret>[^\s@/'\"`]+)@"
        ),
        accept=_not_a_stand_in_password,
        hints=("://",),
    ),
    # High-entropy value assigned to a name ending in KEY, SECRET, TOKEN or PASSWORD
    Rule(
        "secret-assignment",
        re.compile(
            r"(?<![A-Za-z0-9_.-])(?P<name>[A-Za-z0-9_.-]*(?i:key|secret|token|password|passwd|pwd|passphrase"
            r"|credentials?))[\"']?"
            r"\s*(?::\s*[A-Za-z_][\w\[\], |.]*?\s*=|:=|=>|=|:)\s*"
            r"(?:\"(?P<dq>[^\"\n]+)\"|'(?P<sq>[^'\n]+)'|`(?P<bq>[^`\n]+)`|(?P<bare>[^\s\"'`#,;]+))"
        ),
        line_hint=re.compile(r"(?i)key|secret|token|passw|pwd|passphrase|credential"),
        secret_groups=("dq", "sq", "bq", "bare"),
        accept=_high_entropy_assignment,
    ),
)
