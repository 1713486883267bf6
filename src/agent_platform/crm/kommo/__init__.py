"""Kommo (amoCRM) API v4: the client the platform acts through."""
