"""A Kommo sandbox served over real HTTP for the client and sandbox tests, with its account.

The sandbox enforces Kommo's 7 requests/second by default (crm/sandbox/faults.py); these tests
send bursts on purpose and are not about the limit, so `fresh()` switches it off again after
every reset.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx

from agent_platform.crm.sandbox.app import create_sandbox_app, sandbox_store
from agent_platform.crm.sandbox.store import SandboxStore
from tests.support.servers import serve_app

TOKEN = "sandbox-access-token"


@dataclass(frozen=True)
class RunningSandbox:
    url: str
    token: str
    store: SandboxStore

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def fresh(self, http: httpx.AsyncClient) -> None:
        """Back to the seeded account with an empty request log, and no request limit."""
        (await http.post(f"{self.url}/sandbox/reset")).raise_for_status()
        limits = await http.post(f"{self.url}/sandbox/faults", json={"rate_limit": False})
        if limits.status_code != httpx.codes.NOT_FOUND:  # a sandbox without fault switches
            limits.raise_for_status()

    def api_requests(self, method: str | None = None) -> list[str]:
        """The paths of the API requests the sandbox answered, oldest first."""
        return [r.path for r in self.store.requests if method is None or r.method == method]


@contextmanager
def running_sandbox(*, subdomain: str = "sandbox") -> Iterator[RunningSandbox]:
    app = create_sandbox_app(access_token=TOKEN, subdomain=subdomain)
    with serve_app(app) as url:
        yield RunningSandbox(url, TOKEN, sandbox_store(app))
