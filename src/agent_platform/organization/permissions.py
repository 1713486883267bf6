"""What each role may do: the permission matrix as data (documented in docs/permissions.md)."""

from __future__ import annotations

from enum import StrEnum

from agent_platform.kit.errors import AppError
from agent_platform.organization.models import Role


class Permission(StrEnum):
    VIEW_DASHBOARD = "view_dashboard"
    MANAGE_AGENTS = "manage_agents"
    MANAGE_AUTOMATION = "manage_automation"
    TAKE_OVER_CONVERSATIONS = "take_over_conversations"
    MANAGE_INTEGRATIONS = "manage_integrations"
    MANAGE_MEMBERS = "manage_members"
    MANAGE_API_KEYS = "manage_api_keys"
    MANAGE_SECURITY = "manage_security"  # the two-factor policy of the organization
    VIEW_OPERATIONS = "view_operations"


_VIEWING = frozenset({Permission.VIEW_DASHBOARD, Permission.VIEW_OPERATIONS})
_DAILY_WORK = _VIEWING | {
    Permission.MANAGE_AGENTS,
    Permission.MANAGE_AUTOMATION,
    Permission.TAKE_OVER_CONVERSATIONS,
}

PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OWNER: frozenset(Permission),
    # The security policy stays with the owner: it is the policy that binds the admins.
    Role.ADMIN: frozenset(Permission) - {Permission.MANAGE_SECURITY},
    Role.MEMBER: _DAILY_WORK,
    Role.VIEWER: _VIEWING,
}


class ForbiddenError(AppError):
    status_code = 403
    code = "forbidden"


def allowed(role: Role | str, permission: Permission) -> bool:
    """Whether `role` has `permission`; an unknown role has none."""
    try:
        return permission in PERMISSIONS[Role(role)]
    except ValueError:
        return False


def require(role: Role | str, permission: Permission) -> None:
    """ForbiddenError unless `role` has `permission`."""
    if not allowed(role, permission):
        raise ForbiddenError(f"Your role ({role}) may not {permission.replace('_', ' ')}.")
