"""A worker process for the rate-limit tests: `python -m tests.support.kommo_load ID COUNT TASKS`.

It opens the platform's services from the environment (as `agent-platform worker` does) and
makes COUNT calls to Kommo for connection ID through `call_kommo`, TASKS at a time, so the
requests of several such processes meet only in Kommo (the sandbox) and in Redis.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

from agent_platform.config import Settings, ensure_secrets
from agent_platform.crm.kommo.client import KommoClient
from agent_platform.crm.kommo.session import call_kommo
from agent_platform.services import open_services


async def _account_id(kommo: KommoClient) -> int:
    return (await kommo.account.get()).id


async def main(connection_id: uuid.UUID, count: int, tasks: int) -> None:
    settings = ensure_secrets(Settings())
    assert settings.database_url, "DATABASE_URL is needed"
    async with open_services(settings, settings.database_url) as services:

        async def calls(how_many: int) -> None:
            for _ in range(how_many):
                await call_kommo(services, connection_id, _account_id)

        shares = [count // tasks + (1 if index < count % tasks else 0) for index in range(tasks)]
        await asyncio.gather(*(calls(share) for share in shares))
    print("done", flush=True)


if __name__ == "__main__":
    asyncio.run(main(uuid.UUID(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])))
