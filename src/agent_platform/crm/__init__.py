"""The CRM side: Kommo connections, the Kommo API client and the Kommo sandbox."""
