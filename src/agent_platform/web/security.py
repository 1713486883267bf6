"""Security headers on every response, and CORS for the REST API from an allow-list."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.datastructures import MutableHeaders
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

# No inline script or style anywhere: templates use classes and files under /static.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
# FastAPI's Swagger UI loads its bundle from jsDelivr and starts it with an inline script. The
# page shows only the API's own description, so that one path gets a wider policy.
API_DOCS_PATH = "/api/docs"
API_DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
    "style-src 'self' https://cdn.jsdelivr.net; img-src 'self' data: https:; "
    "frame-ancestors 'none'; base-uri 'self'; form-action 'self'"
)
HSTS = "max-age=31536000; includeSubDomains"

_COMMON_HEADERS = {
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
}


class SecurityHeadersMiddleware:
    """Adds the headers to pages, API answers, static files and errors alike.

    HSTS only over HTTPS: the request's scheme, which uvicorn takes from X-Forwarded-Proto
    when the request comes from a trusted proxy (FORWARDED_ALLOW_IPS, default 127.0.0.1).
    Sent over plain HTTP it would be ignored, and on a development address it would pin it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        policy = API_DOCS_POLICY if path.startswith(API_DOCS_PATH) else CONTENT_SECURITY_POLICY
        over_https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("content-security-policy", policy)
                for name, value in _COMMON_HEADERS.items():
                    headers.setdefault(name, value)
                if over_https:
                    headers.setdefault("strict-transport-security", HSTS)
            await send(message)

        await self.app(scope, receive, send_with_headers)


API_PATH_PREFIX = "/api/"
# What a browser page on an allowed origin may send: the API key headers and JSON.
CORS_ALLOWED_HEADERS = ("Authorization", "X-API-Key", "Content-Type", "X-Request-ID")
CORS_EXPOSED_HEADERS = ("X-Request-ID", "Retry-After")
CORS_MAX_AGE_SECONDS = 600


class ApiCorsMiddleware:
    """CORS for /api/ only, for the origins listed in CORS_ALLOWED_ORIGINS.

    The API authenticates by API key, never by cookie, so no credentials are allowed; the
    dashboard's pages are same-origin and get no CORS headers at all.
    """

    def __init__(self, app: ASGIApp, allowed_origins: Sequence[str]) -> None:
        self.app = app
        self.cors = CORSMiddleware(
            app,
            allow_origins=list(allowed_origins),
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            allow_headers=list(CORS_ALLOWED_HEADERS),
            expose_headers=list(CORS_EXPOSED_HEADERS),
            allow_credentials=False,
            max_age=CORS_MAX_AGE_SECONDS,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(API_PATH_PREFIX):
            await self.cors(scope, receive, send)
            return
        await self.app(scope, receive, send)
