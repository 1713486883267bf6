"""GPT Agent Platform: AI agents that work inside Kommo CRM."""

__version__ = "0.1.0"
