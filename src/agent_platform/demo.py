"""`up --demo`: a demo organization, admin, API key, agent and a connection to the Kommo sandbox.

The credentials are written to DATA_DIR/demo.json. On the next start with the same data
directory the same demo is reused (the file is the only place its secrets exist).

The connection's webhook is subscribed in the sandbox as any connected account's is (a job,
deferred with the seeding), on every start: the sandbox keeps its subscriptions in memory.
Its destination is the address the api listens on this time, which is what the sandbox can
reach, whatever PUBLIC_BASE_URL says.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_platform.agent.schemas import AgentSettings
from agent_platform.agent.versions import new_agent, publish_version
from agent_platform.crm.kommo.tasks import defer_webhook_subscription
from agent_platform.crm.kommo.webhook_subscription import webhook_destination
from agent_platform.crm.models import CrmConnection
from agent_platform.db.session import transaction
from agent_platform.kit.failures import StartupRefusedError
from agent_platform.knowledge.models import KnowledgeFaq
from agent_platform.knowledge.repository import add_faq
from agent_platform.organization.credentials import hash_password, new_api_key
from agent_platform.organization.models import ApiKey, Membership, Organization, Role, User
from agent_platform.services import Services

DEMO_SLUG = "demo"
DEMO_INSTRUCTIONS = (
    "You are the friendly sales assistant of Demo Sales Team. Answer questions about our "
    "products, find out what the customer needs and offer to arrange a call with a manager."
)

# Curated answers: with no LLM key the demo agent still answers these (and hands the rest
# over to a person), as a real team's would.
DEMO_FAQS = (
    (
        "How much does it cost?",
        "Our plans start at 100 USD a month for a team of five; a manager can prepare an "
        "offer for your team.",
    ),
    (
        "Do you ship to Europe?",
        "Yes: we ship to every country of the European Union within 3 to 5 working days.",
    ),
    (
        "Can I talk to a manager?",
        "Of course: leave your phone number and a manager will call you back today.",
    ),
)


@dataclass(frozen=True)
class DemoInfo:
    api_url: str
    admin_email: str
    admin_password: str
    api_key: str
    agent_id: str
    webhook_url: str
    kommo_base_url: str
    kommo_access_token: str


def demo_file(data_dir: Path) -> Path:
    return data_dir / "demo.json"


def sandbox_token(data_dir: Path) -> str:
    """The sandbox's access token: from an earlier demo when there is one, else a new one."""
    path = demo_file(data_dir)
    if path.exists():
        return str(json.loads(path.read_text())["kommo_access_token"])
    return secrets.token_urlsafe(24)


async def seed_demo(
    services: Services, *, api_url: str, kommo_base_url: str, kommo_access_token: str
) -> DemoInfo:
    path = demo_file(services.settings.data_dir)
    async with transaction(services.sessions) as session:
        organization = await session.scalar(
            select(Organization).where(Organization.slug == DEMO_SLUG)
        )
        if organization is not None and path.exists():
            previous = DemoInfo(**json.loads(path.read_text()))
            connection = await session.scalar(
                select(CrmConnection).where(CrmConnection.organization_id == organization.id)
            )
            assert connection is not None, "the demo is created with its connection"
            # The sandbox may listen on another port this time.
            connection.base_url = kommo_base_url
            await defer_webhook_subscription(session, services, connection, public_base_url=api_url)
            info = replace(
                previous,
                api_url=api_url,
                kommo_base_url=kommo_base_url,
                webhook_url=webhook_destination(api_url, connection.webhook_token),
            )
        else:
            if organization is not None:
                # Likely another instance's demo on a shared database: deleting it would break
                # that instance (its webhooks would 404), so refuse instead.
                raise StartupRefusedError(
                    f"this database already holds a demo organization, but {path} does not "
                    "exist; use the DATA_DIR that created it or another database"
                )
            info = await _create_demo(
                services, session, api_url, kommo_base_url, kommo_access_token
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(info), indent=2))
    path.chmod(0o600)
    return info


async def _create_demo(
    services: Services,
    session: AsyncSession,
    api_url: str,
    kommo_base_url: str,
    kommo_access_token: str,
) -> DemoInfo:
    organization = Organization(name="Demo Sales Team", slug=DEMO_SLUG)
    email = "admin@demo.example"
    admin = await session.scalar(select(User).where(User.email == email))
    password = secrets.token_urlsafe(12)
    if admin is None:
        admin = User(email=email, name="Demo Admin")
        session.add(admin)
    admin.password_hash = hash_password(password)
    session.add(organization)
    await session.flush()
    session.add(Membership(organization_id=organization.id, user_id=admin.id, role=Role.OWNER))
    key = new_api_key()
    session.add(
        ApiKey(
            organization_id=organization.id,
            name="Demo key",
            prefix=key.prefix,
            key_hash=key.key_hash,
            scopes=["read", "write"],
            created_by=admin.id,
        )
    )
    agent, first_version = await new_agent(
        session,
        organization.id,
        AgentSettings(
            name="Demo sales agent",
            instructions=DEMO_INSTRUCTIONS,
            model=services.settings.llm_default_model,
        ),
        created_by=None,
        note="The demo's agent",
    )
    publish_version(agent, first_version, published_by=None)
    for question, answer in DEMO_FAQS:
        await add_faq(
            session,
            KnowledgeFaq(
                organization_id=organization.id, agent_id=None, question=question, answer=answer
            ),
        )
    connection = CrmConnection(
        organization_id=organization.id,
        subdomain="sandbox",
        base_url=kommo_base_url,
        access_token_encrypted=services.secrets.encrypt(kommo_access_token),
        webhook_token=secrets.token_urlsafe(24),
        agent_id=agent.id,
    )
    session.add(connection)
    await session.flush()
    await defer_webhook_subscription(session, services, connection, public_base_url=api_url)
    return DemoInfo(
        api_url=api_url,
        admin_email=email,
        admin_password=password,
        api_key=key.plaintext,
        agent_id=str(agent.id),
        webhook_url=webhook_destination(api_url, connection.webhook_token),
        kommo_base_url=kommo_base_url,
        kommo_access_token=kommo_access_token,
    )
