"""AI agents: settings, the reply job and the pure runtime."""
