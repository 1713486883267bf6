"""The activity log: what the platform did, for whom and why."""
