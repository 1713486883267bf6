"""The job queue: Procrastinate on the platform's own PostgreSQL."""
