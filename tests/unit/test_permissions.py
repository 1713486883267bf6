"""The permission matrix: what each role may do, and the documented table saying the same."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent_platform.organization.models import Role
from agent_platform.organization.permissions import (
    PERMISSIONS,
    ForbiddenError,
    Permission,
    allowed,
    require,
)

DOC = Path(__file__).parents[2] / "docs" / "permissions.md"


def test_every_role_has_an_entry() -> None:
    assert set(PERMISSIONS) == set(Role)


def test_the_owner_may_do_everything() -> None:
    assert all(allowed(Role.OWNER, permission) for permission in Permission)


def test_an_admin_may_do_everything_but_set_the_security_policy() -> None:
    assert not allowed(Role.ADMIN, Permission.MANAGE_SECURITY)
    assert PERMISSIONS[Role.ADMIN] == frozenset(Permission) - {Permission.MANAGE_SECURITY}


def test_a_member_does_the_daily_work_only() -> None:
    assert allowed("member", Permission.MANAGE_AGENTS)
    assert allowed("member", Permission.TAKE_OVER_CONVERSATIONS)
    for permission in (
        Permission.MANAGE_INTEGRATIONS,
        Permission.MANAGE_MEMBERS,
        Permission.MANAGE_API_KEYS,
        Permission.MANAGE_SECURITY,
    ):
        assert not allowed("member", permission)


def test_a_viewer_only_views() -> None:
    assert PERMISSIONS[Role.VIEWER] == {Permission.VIEW_DASHBOARD, Permission.VIEW_OPERATIONS}


def test_an_unknown_role_may_do_nothing() -> None:
    assert not any(allowed("superuser", permission) for permission in Permission)


def test_require_refuses_with_403() -> None:
    require(Role.ADMIN, Permission.MANAGE_MEMBERS)
    with pytest.raises(ForbiddenError) as refused:
        require(Role.VIEWER, Permission.MANAGE_AGENTS)
    assert refused.value.status_code == 403
    assert "viewer" in refused.value.message


def test_the_documented_table_matches_the_matrix() -> None:
    roles = list(Role)
    documented: dict[Role, set[str]] = {role: set() for role in roles}
    rows = re.findall(r"^\| `(\w+)` \|[^|]*\|(.*)\|$", DOC.read_text(), flags=re.MULTILINE)
    assert {name for name, _ in rows} == {permission.value for permission in Permission}
    for name, marks in rows:
        cells = [cell.strip() for cell in marks.split("|")]
        assert len(cells) == len(roles), name
        for role, cell in zip(roles, cells, strict=True):
            if cell == "✓":
                documented[role].add(name)
    assert documented == {role: {p.value for p in PERMISSIONS[role]} for role in roles}
