"""Triggers through the API: on an event, when the conditions hold, perform the actions."""
