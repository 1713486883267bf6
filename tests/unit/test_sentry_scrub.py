"""What is filtered from Sentry events before they leave the process, and what stays readable."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from agent_platform import __version__
from agent_platform.ops.sentry import FILTERED, release_name, scrub, scrub_text

SECRET = "Zq8vN2kP4tX7mW9rL3hJ6cB1"  # random-looking, as a real credential is


@pytest.mark.parametrize(
    "name",
    [
        "Authorization",
        "Cookie",
        "Set-Cookie",
        "X-Api-Key",
        "refresh_token",
        "kommo_access_token",
        "new_password",
        "client_secret",
        "SENTRY_DSN",
        "encryption_key",
        "credentials",
        "bearer",
    ],
)
def test_a_value_under_a_secret_sounding_name_is_filtered_whatever_it_looks_like(
    name: str,
) -> None:
    event = {"request": {"headers": {name: "plain words"}}, "extra": {"nested": [{name: 42}]}}

    assert scrub(event) == {
        "request": {"headers": {name: FILTERED}},
        "extra": {"nested": [{name: FILTERED}]},
    }


def test_a_header_pair_of_an_asgi_scope_in_a_frames_variables_is_filtered_by_its_name() -> None:
    headers = [["b'cookie'", f"b'ap_session={SECRET}'"], ["b'accept'", "b'*/*'"]]

    assert scrub({"vars": {"scope": {"headers": headers}}}) == {
        "vars": {"scope": {"headers": [["b'cookie'", FILTERED], ["b'accept'", "b'*/*'"]]}}
    }


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        (f"Authorization: Bearer {SECRET}", f"Authorization: {FILTERED}"),
        (f"sent with Bearer {SECRET} to Kommo", f"sent with Bearer {FILTERED} to Kommo"),
        (f"api_token={SECRET}&page=2", f"api_token={FILTERED}&page=2"),
        (f"{{'password': '{SECRET}'}}", f"{{'password': '{FILTERED}'}}"),
        (f"key sk-or-v1-{SECRET}", f"key {FILTERED}"),
        (f"ap_0123456789ab_{SECRET}", FILTERED),
        (
            f"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.{SECRET}",
            FILTERED,
        ),
        (
            f"could not reach postgresql://agent:{SECRET}@db:5432/agent",
            f"could not reach postgresql://agent:{FILTERED}@db:5432/agent",
        ),
        (f"redis://:{SECRET}@cache:6379/0", f"redis://:{FILTERED}@cache:6379/0"),
        ("AWS key AKIAIOSFODNN7QWERTYZ", f"AWS key {FILTERED}"),
    ],
)
def test_values_that_look_like_credentials_are_filtered_in_any_text(
    text: str, scrubbed: str
) -> None:
    assert scrub_text(text) == scrubbed
    assert scrub({"exception": {"values": [{"value": text}]}}) == {
        "exception": {"values": [{"value": scrubbed}]}
    }


@pytest.mark.parametrize(
    "text",
    [
        "KeyError: 'agent_id'",
        "Token refresh failed for connection 42",
        "GET https://sandbox.kommo.com/api/v4/leads?page=2&limit=50",
        "postgresql://db:5432/agent",
        "job record_manager_message failed after 3 attempts",
    ],
)
def test_ordinary_text_stays_readable(text: str) -> None:
    assert scrub_text(text) == text


def test_source_lines_and_sentrys_own_trace_header_are_left_as_they_are() -> None:
    frame = {"context_line": "    token = request.headers['Authorization']"}
    trace = {"dynamic_sampling_context": {"public_key": "publickey", "release": "x"}}

    assert scrub(frame) == frame
    assert scrub(trace) == trace


def test_known_secrets_are_removed_wherever_they_appear() -> None:
    event = {"request": {"url": f"http://h/webhooks/kommo/{SECRET}"}, "vars": {"path": SECRET}}

    assert scrub(event, frozenset({SECRET})) == {
        "request": {"url": f"http://h/webhooks/kommo/{FILTERED}"},
        "vars": {"path": FILTERED},
    }


def test_the_release_names_the_version_and_the_given_commit() -> None:
    assert release_name("abc1234") == f"agent-platform@{__version__}+abc1234"


@pytest.mark.skipif(
    shutil.which("git") is None or not (Path(__file__).parents[2] / ".git").exists(),
    reason="needs git and a checkout",
)
def test_in_a_checkout_without_git_sha_the_release_names_the_checkouts_commit() -> None:
    assert re.fullmatch(
        rf"agent-platform@{re.escape(__version__)}\+[0-9a-f]{{7,}}", release_name(None)
    )
