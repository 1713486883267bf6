"""The web dashboard: server-rendered pages (Jinja2 + HTMX) in English and Russian."""
