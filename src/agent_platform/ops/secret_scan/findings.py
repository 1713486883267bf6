"""Finding secrets in one text: rules applied, placeholders and inline markers left out, masked."""

from __future__ import annotations

import bisect
import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass

from agent_platform.ops.secret_scan.rules import RULES, Rule, looks_like_placeholder

# On the line of a finding, either marker says "this is not a secret" (the second one is
# detect-secrets' marker, so code already annotated for it needs no second comment).
INLINE_MARKERS = ("secrets-scan: allow", "pragma: allowlist secret")
# Characters of context shown before the masked secret.
_EXCERPT_CONTEXT = 40


@dataclass(frozen=True)
class Finding:
    path: str
    line: int
    rule: str
    # Stable across moves, edits around it and commits: the allow-list refers to it.
    fingerprint: str
    commit: str | None
    # The line around the secret with the secret masked; never the secret itself.
    excerpt: str


@dataclass(frozen=True)
class _Match:
    rule: Rule
    # Where the rule's whole match begins: its line is the finding's line (a key's BEGIN line).
    begin: int
    # The secret's span inside it.
    start: int
    end: int
    secret: str


def fingerprint(rule: str, secret: str) -> str:
    return hashlib.sha256(f"{rule}:{secret}".encode()).hexdigest()[:16]


def mask(secret: str) -> str:
    """A sixth of the secret at most, never more than 6 characters: enough to recognise it."""
    return secret[: min(6, len(secret) // 6)] + "****"


def scan_text(text: str, path: str, commit: str | None = None) -> list[Finding]:
    matches = _secret_matches(text)
    if not matches:
        return []
    line_starts = [0, *(m.end() for m in re.finditer("\n", text))]
    findings = []
    for match in matches:
        line_index = bisect.bisect_right(line_starts, match.begin) - 1
        line_start = line_starts[line_index]
        line_end = text.find("\n", line_start)
        line = text[line_start : line_end if line_end != -1 else len(text)]
        if any(marker in line for marker in INLINE_MARKERS):
            continue
        findings.append(
            Finding(
                path=path,
                line=line_index + 1,
                rule=match.rule.name,
                fingerprint=fingerprint(match.rule.name, match.secret),
                commit=commit,
                excerpt=_excerpt(text, line_start, match, matches),
            )
        )
    return findings


def _secret_matches(text: str) -> list[_Match]:
    """Every real-looking secret, each span once: the first rule that finds it reports it."""
    taken: list[_Match] = []
    for rule in RULES:
        if rule.hints and not any(hint in text for hint in rule.hints):
            continue
        for found in _rule_matches(rule, text):
            group = next(g for g in rule.secret_groups if found.group(g) is not None)
            secret, start, end = found.group(group), found.start(group), found.end(group)
            if looks_like_placeholder(secret):
                continue
            if rule.accept is not None and not rule.accept(found, secret):
                continue
            if any(start < other.end and other.start < end for other in taken):
                continue
            taken.append(_Match(rule, found.start(), start, end, secret))
    return sorted(taken, key=lambda m: m.start)


def _rule_matches(rule: Rule, text: str) -> Iterator[re.Match[str]]:
    if rule.line_hint is None:
        yield from rule.pattern.finditer(text)
        return
    searched_to = 0
    for hint in rule.line_hint.finditer(text):
        if hint.start() < searched_to:
            continue
        line_start = text.rfind("\n", 0, hint.start()) + 1
        line_end = text.find("\n", hint.end())
        searched_to = len(text) if line_end == -1 else line_end
        yield from rule.pattern.finditer(text, line_start, searched_to)


def _excerpt(text: str, line_start: int, match: _Match, matches: list[_Match]) -> str:
    """Some context before the secret, every secret in it masked, nothing after it.

    Nothing after: it may be more of the same secret (a private key's next lines).
    """
    window_start = max(line_start, match.start - _EXCERPT_CONTEXT)
    parts, position = [], window_start
    for other in matches:
        if other.end <= window_start or other.start > match.start:
            continue
        parts += [text[position : max(position, other.start)], mask(other.secret)]
        position = other.end
    return " ".join("".join(parts).split())
