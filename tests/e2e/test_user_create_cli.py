"""`agent-platform user create`: the first owner of an installation signs in; a second user
joins the same organization; weak passwords and taken emails are refused with one line."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

from agent_platform.config import Settings
from agent_platform.organization.login import log_in
from agent_platform.services import Services
from tests.support.processes import CLI, settings_env

PASSWORD = "amber-Kettle-41-softly-rivers"


async def user_create(
    settings: Settings, *args: str, password: str = PASSWORD
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [str(CLI), "user", "create", *args, "--password-stdin"],
        input=password + "\n",
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_the_first_owner_signs_in_and_a_second_user_joins_the_organization(
    settings: Settings, services: Services, tmp_path: Path
) -> None:
    first = await user_create(
        settings, "Owner@Example.com", "--organization", "Acme Sales", "--json"
    )
    assert first.returncode == 0, first.stderr
    owner = json.loads(first.stdout)
    assert owner["organization_created"] is True
    assert owner["role"] == "owner"

    second = await user_create(
        settings, "seller@example.com", "--organization", "Acme Sales", "--role", "member"
    )
    assert second.returncode == 0, second.stderr
    assert "existing organization Acme Sales" in second.stdout

    signed_in = await log_in(services, email="owner@example.com", password=PASSWORD, ip="10.0.0.1")
    assert str(signed_in.user_id) == owner["user_id"]
    assert str(signed_in.organization_id) == owner["organization_id"]
    assert signed_in.role == "owner"
    seller = await log_in(services, email="seller@example.com", password=PASSWORD, ip="10.0.0.1")
    assert str(seller.organization_id) == owner["organization_id"]
    assert seller.role == "member"


async def test_weak_passwords_taken_emails_and_bad_addresses_are_refused_in_one_line(
    settings: Settings,
) -> None:
    weak = await user_create(settings, "a@example.com", "--organization", "A", password="short")
    assert weak.returncode == 2
    assert weak.stderr.startswith("Refused: ")
    assert weak.stderr.count("\n") == 1

    assert (await user_create(settings, "b@example.com", "--organization", "B")).returncode == 0
    taken = await user_create(settings, "B@example.com", "--organization", "C")
    assert taken.returncode == 2
    # Log lines (JSON) may come first on stderr: the refusal is the last line.
    assert taken.stderr.endswith("\nRefused: b@example.com already has an account\n")

    bad = await user_create(settings, "not-an-address", "--organization", "D")
    assert bad.returncode == 2
    assert "email address is not valid" in bad.stderr
    assert "Traceback" not in weak.stderr + taken.stderr + bad.stderr
