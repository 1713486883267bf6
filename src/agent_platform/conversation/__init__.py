"""Conversations with leads and the messages in them."""
