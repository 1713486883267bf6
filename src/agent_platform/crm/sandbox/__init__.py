"""The Kommo sandbox: a real HTTP server speaking the part of Kommo API v4 the platform uses."""
