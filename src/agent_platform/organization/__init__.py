"""Organizations, users, memberships and API keys."""
