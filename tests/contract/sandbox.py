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
        """Back to the seeded account with empty request logs, no faults and no request limit."""
        (await http.post(f"{self.url}/sandbox/reset")).raise_for_status()
        (await http.delete(f"{self.url}/sandbox/faults")).raise_for_status()
        (await http.delete(f"{self.url}/sandbox/faults/requests")).raise_for_status()
        await self.switch_faults(http, rate_limit=False)

    async def switch_faults(self, http: httpx.AsyncClient, **faults: object) -> None:
        (await http.post(f"{self.url}/sandbox/faults", json=faults)).raise_for_status()

    async def arrival_statuses(self, http: httpx.AsyncClient) -> list[int]:
        """The status of every API request that arrived, oldest first, the fault switches'
        answers (429, 5xx) included: `api_requests` sees only what reached the routes."""
        arrivals = (await http.get(f"{self.url}/sandbox/faults/requests")).json()["requests"]
        return [arrival["status"] for arrival in arrivals]

    def api_requests(self, method: str | None = None) -> list[str]:
        """The paths of the API requests the sandbox answered, oldest first."""
        return [r.path for r in self.store.requests if method is None or r.method == method]


@contextmanager
def running_sandbox(*, subdomain: str = "sandbox") -> Iterator[RunningSandbox]:
    app = create_sandbox_app(access_token=TOKEN, subdomain=subdomain)
    with serve_app(app) as url:
        yield RunningSandbox(url, TOKEN, sandbox_store(app))
