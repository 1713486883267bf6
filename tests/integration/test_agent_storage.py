"""How agents are stored: the row's defaults are the schema's; the demo's agent and, through
migration 0007, every agent from before versions answer with their version 1, published."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from alembic import command
from sqlalchemy import make_url

from agent_platform.agent.models import Agent, AgentVersion
from agent_platform.agent.schemas import AgentSettings
from agent_platform.agent.versions import settings_of
from agent_platform.db.migrate import alembic_config
from agent_platform.db.session import transaction
from agent_platform.db.urls import libpq_url
from agent_platform.demo import seed_demo
from agent_platform.organization.models import Organization
from agent_platform.services import Services


async def test_an_agent_row_written_with_only_name_and_model_has_the_schemas_defaults(
    services: Services,
) -> None:
    async with transaction(services.sessions) as session:
        organization = Organization(name="Acme", slug=f"acme-{secrets.token_hex(3)}")
        session.add(organization)
        await session.flush()
        bare = Agent(organization_id=organization.id, name="Bare", model="test/model")
        session.add(bare)
        await session.flush()
    async with transaction(services.sessions) as session:
        agent = await session.get(Agent, bare.id)

    assert agent is not None
    assert settings_of(agent) == AgentSettings(name="Bare", model="test/model")


async def test_the_demo_agent_answers_with_its_published_version_1(services: Services) -> None:
    demo = await seed_demo(
        services,
        api_url="http://127.0.0.1:1",
        kommo_base_url="http://127.0.0.1:2",
        kommo_access_token="t",
    )

    async with transaction(services.sessions) as session:
        agent = await session.get(Agent, uuid.UUID(demo.agent_id))
        assert agent is not None
        version = await session.get(AgentVersion, agent.published_version_id)
    assert agent.status == "active"
    assert version is not None
    assert version.number == 1
    assert AgentSettings.model_validate(version.settings) == settings_of(agent)


@pytest.fixture
def empty_database(database_server_url: str) -> Iterator[str]:
    """A database of its own, with no schema yet."""
    name = f"ap_test_migration_{secrets.token_hex(4)}"
    with psycopg.connect(libpq_url(database_server_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(database_server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(libpq_url(database_server_url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_migration_0007_publishes_each_existing_agents_settings_as_version_1(
    empty_database: str,
) -> None:
    config = alembic_config(empty_database)
    command.upgrade(config, "0006")
    organization_id, agent_id = uuid.uuid4(), uuid.uuid4()
    with psycopg.connect(libpq_url(empty_database), autocommit=True) as connection:
        connection.execute(
            "INSERT INTO organizations (id, name, slug) VALUES (%s, 'Acme', 'acme')",
            (organization_id,),
        )
        connection.execute(
            "INSERT INTO agents (id, organization_id, name, instructions, model, temperature, "
            "status) VALUES (%s, %s, 'Old', 'Sell.', 'old/model', 0.5, 'paused')",
            (agent_id, organization_id),
        )

    command.upgrade(config, "0007")

    with psycopg.connect(libpq_url(empty_database)) as connection:
        version = connection.execute(
            "SELECT id, number, settings, created_by FROM agent_versions WHERE agent_id = %s",
            (agent_id,),
        ).fetchall()
        agent = connection.execute(
            "SELECT published_version_id, published_at, status FROM agents WHERE id = %s",
            (agent_id,),
        ).fetchone()
    [(version_id, number, snapshot, created_by)] = version
    assert (number, created_by) == (1, None)
    assert AgentSettings.model_validate(snapshot) == AgentSettings(
        name="Old", instructions="Sell.", model="old/model", temperature=0.5
    )
    assert agent is not None
    assert agent[0] == version_id
    assert agent[1] is not None
    assert agent[2] == "paused"

    command.downgrade(config, "0006")
    command.upgrade(config, "0007")
