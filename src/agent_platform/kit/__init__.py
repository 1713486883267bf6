"""Small shared pieces used across domains."""
