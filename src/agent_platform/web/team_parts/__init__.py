"""The team pages' parts: members, invitations, API keys and two-factor security."""
