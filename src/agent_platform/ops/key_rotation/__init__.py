"""`agent-platform secrets rotate-key`: every stored secret re-encrypted under a new key."""
