"""The agent's pure core: prompts and decisions, with no database, web or queue imports."""
