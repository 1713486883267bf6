"""The agents pages' parts: the settings forms, the lookups the tabs need, the playground."""
