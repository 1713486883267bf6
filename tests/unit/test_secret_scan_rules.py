"""The secret scanner's rules on a corpus of true and false positives, masking, markers."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent_platform.ops.secret_scan.allowlist import parse_allowlist
from agent_platform.ops.secret_scan.errors import SecretScanError
from agent_platform.ops.secret_scan.findings import scan_text
from agent_platform.ops.secret_scan.rules import RULES
from tests.unit.secret_corpus import ALNUM, FALSE_POSITIVES, TRUE_POSITIVES, fake

DOCS = Path(__file__).resolve().parents[2] / "docs" / "secret-scanning.md"


def test_every_rule_has_a_true_positive_in_the_corpus_and_is_documented() -> None:
    assert {rule.name for rule in RULES} == {rule for rule, _ in TRUE_POSITIVES}
    documented = set(re.findall(r"^\| `([a-z0-9-]+)` \|", DOCS.read_text("utf-8"), re.MULTILINE))
    assert documented == {rule.name for rule in RULES}


@pytest.mark.parametrize(("rule", "text"), TRUE_POSITIVES)
def test_a_secret_is_reported_once_by_its_rule_and_never_shown(rule: str, text: str) -> None:
    findings = scan_text(text, "config.txt")

    assert [(f.rule, f.path) for f in findings] == [(rule, "config.txt")]
    [finding] = findings
    assert finding.excerpt.endswith("****")
    # The random values are the long runs with digits: no 12 characters of them are shown.
    for value in re.findall(r"[A-Za-z0-9+/_-]{16,}", text):
        if any(c.isdigit() for c in value):
            for start in range(len(value) - 11):
                assert value[start : start + 12] not in finding.excerpt


@pytest.mark.parametrize("text", FALSE_POSITIVES)
def test_placeholders_examples_and_code_are_not_reported(text: str) -> None:
    assert scan_text(text, "docs/configuration.md") == []


def test_the_line_of_a_finding_is_where_it_starts() -> None:
    # A private key's BEGIN line, where an inline marker would go, not its first key line.
    pem = next(text for _, text in TRUE_POSITIVES if text.startswith("-----BEGIN RSA"))
    text = "# keys\n\n" + TRUE_POSITIVES[0][1] + "\n" + pem

    assert [(f.line, f.rule) for f in scan_text(text, "a")] == [
        (3, "openrouter-api-key"),
        (4, "private-key"),
    ]


def test_two_secrets_on_one_line_are_both_masked_in_both_excerpts() -> None:
    first, second = fake(ALNUM, 32), fake(ALNUM, 32)
    findings = scan_text(f"API_KEY={first} AUTH_TOKEN={second}", "a")

    assert len(findings) == 2
    for finding in findings:
        assert first[6:] not in finding.excerpt
        assert second[6:] not in finding.excerpt


def test_the_fingerprint_follows_the_secret_not_its_place() -> None:
    line = f"SECRET_KEY={fake(ALNUM, 40)}"
    [here] = scan_text(line, "a.env")
    [there] = scan_text(f"# moved\n\n{line}", "b.env")
    [other] = scan_text(f"SECRET_KEY={fake(ALNUM, 40)}", "a.env")

    assert here.fingerprint == there.fingerprint != other.fingerprint


@pytest.mark.parametrize(
    "marker", ["  # secrets-scan: allow", "  # pragma: allowlist secret", " // secrets-scan: allow"]
)
def test_an_inline_marker_on_the_line_allows_it(marker: str) -> None:
    line = f"SECRET_KEY={fake(ALNUM, 40)}"

    assert scan_text(line + marker, "a") == []
    assert len(scan_text(f"{marker}\n{line}", "a")) == 1


def test_an_allowlist_matches_by_fingerprint_glob_or_both() -> None:
    [finding] = scan_text(f"SECRET_KEY={fake(ALNUM, 40)}", "tests/fixtures/app.env")
    fingerprint = finding.fingerprint
    allowing = [
        f"{fingerprint}\n",
        "tests/fixtures/*\n",
        f"# fixture\n{fingerprint}  tests/*.env  # only there\n",
    ]
    refusing = [
        "0123456789abcdef\n",
        "docs/*\n",
        f"{fingerprint} docs/*\n",
        f"# {fingerprint}\n",
    ]

    assert all(parse_allowlist(text).allows(finding) for text in allowing)
    assert not any(parse_allowlist(text).allows(finding) for text in refusing)


def test_an_allowlist_line_with_three_words_is_refused_with_its_line_number() -> None:
    with pytest.raises(SecretScanError, match=r"allow:2: expected a fingerprint"):
        parse_allowlist("docs/*\ndocs/* tests/* more\n", source="allow")
