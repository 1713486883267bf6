"""The integrations and operations pages: Kommo connections, webhook health, platform health."""
