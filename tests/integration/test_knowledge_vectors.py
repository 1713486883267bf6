"""Vector search, with a fake embeddings endpoint over real HTTP: chunks stored with their
vectors, hybrid ranking, a misspelt query found by vector alone, and full-text search that
goes on when the endpoint fails or the database has no pgvector (said once in the log and in
every answer).

The tests that store vectors need pgvector on the test PostgreSQL; where it is missing they
are skipped, and say so.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest
from alembic import command
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url
from structlog.testing import capture_logs

from agent_platform.config import Settings
from agent_platform.db.migrate import alembic_config
from agent_platform.db.session import transaction
from agent_platform.db.urls import libpq_url
from agent_platform.knowledge import service
from agent_platform.knowledge.embeddings import EmbeddingsUnavailableError
from agent_platform.knowledge.models import KnowledgeDocument
from agent_platform.knowledge.results import MatchedBy
from agent_platform.knowledge.retrieval import answer_context
from agent_platform.knowledge.vectors import NO_PGVECTOR
from agent_platform.services import Services, open_services
from tests.fakes.embeddings_server import FakeEmbeddingsState, create_fake_embeddings_app
from tests.support.knowledge import Tenant, add_text, create_tenant
from tests.support.servers import serve_app

PRICES = "# Prices\n\nOur price list: a sofa costs 900 USD, an armchair 400 USD."
DELIVERY = "# Delivery\n\nDelivery is free in Moscow; elsewhere it takes a week."


@pytest.fixture(scope="session")
def pgvector(database_url: str) -> None:
    with psycopg.connect(libpq_url(database_url)) as connection:
        row = connection.execute(
            "SELECT EXISTS (SELECT FROM pg_attribute WHERE attrelid = "
            "'knowledge_chunks'::regclass AND attname = 'embedding' AND NOT attisdropped)"
        ).fetchone()
    if not (row and row[0]):
        pytest.skip(
            "the test PostgreSQL server has no pgvector, so migration 0006 made no vector "
            "column: install postgresql-NN-pgvector (or use the embedded server) to run these"
        )


@pytest.fixture
def embeddings() -> Iterator[tuple[str, FakeEmbeddingsState]]:
    app = create_fake_embeddings_app()
    with serve_app(app) as url:
        yield f"{url}/v1", app.state.fake


def with_embeddings(settings: Settings, embeddings_url: str, database_url: str) -> Settings:
    return settings.model_copy(
        update={"embeddings_base_url": embeddings_url, "database_url": database_url}
    )


@pytest.fixture
async def vector_services(
    pgvector: None, settings: Settings, embeddings: tuple[str, FakeEmbeddingsState]
) -> AsyncIterator[Services]:
    assert settings.database_url
    hybrid = with_embeddings(settings, embeddings[0], settings.database_url)
    async with open_services(hybrid, settings.database_url) as opened:
        yield opened


@pytest.fixture
async def tenant(vector_services: Services) -> Tenant:
    return await create_tenant(vector_services)


async def embedded_chunks(services: Services) -> int:
    async with transaction(services.sessions) as session:
        count = await session.scalar(
            text("SELECT count(*) FROM knowledge_chunks WHERE embedding IS NOT NULL")
        )
    return int(count or 0)


async def test_chunks_are_stored_with_their_vectors(
    vector_services: Services, tenant: Tenant, embeddings: tuple[str, FakeEmbeddingsState]
) -> None:
    record = await add_text(vector_services, tenant.organization_id, PRICES * 30)
    assert record.chunk_count > 1
    assert await embedded_chunks(vector_services) == record.chunk_count
    assert embeddings[1].texts_embedded == record.chunk_count


async def test_a_misspelt_query_is_found_by_its_vector_alone(
    vector_services: Services, tenant: Tenant
) -> None:
    await add_text(vector_services, tenant.organization_id, PRICES)
    await add_text(vector_services, tenant.organization_id, DELIVERY)
    result = await service.search(
        vector_services, tenant.organization_id, "sofaa pricez", agent_id=None, limit=5
    )
    assert result.vector_search.enabled
    assert not result.every_word_matched
    best = result.passages[0]
    assert (best.text, best.matched_by) == (PRICES, frozenset({MatchedBy.VECTOR}))


async def test_what_both_rankings_find_comes_first(
    vector_services: Services, tenant: Tenant
) -> None:
    await add_text(vector_services, tenant.organization_id, PRICES)
    await add_text(vector_services, tenant.organization_id, DELIVERY)
    result = await service.search(
        vector_services, tenant.organization_id, "free delivery", agent_id=None, limit=5
    )
    best = result.passages[0]
    assert (best.text, best.matched_by) == (
        DELIVERY,
        frozenset({MatchedBy.TEXT, MatchedBy.VECTOR}),
    )
    assert [passage.text for passage in result.passages] == [DELIVERY, PRICES]


async def test_vectors_never_cross_organizations_or_agents(
    vector_services: Services, tenant: Tenant
) -> None:
    rival = await create_tenant(vector_services, "Rival")
    await add_text(vector_services, rival.organization_id, PRICES)
    await add_text(
        vector_services, tenant.organization_id, DELIVERY, agent_id=tenant.other_agent_id
    )
    result = await service.search(
        vector_services, tenant.organization_id, "sofaa", agent_id=tenant.agent_id, limit=5
    )
    assert result.vector_search.enabled
    assert result.passages == []


async def test_the_answer_context_takes_the_questions_vector(
    vector_services: Services, tenant: Tenant
) -> None:
    await add_text(vector_services, tenant.organization_id, PRICES)
    question = "sofaa pricez?"
    vector = await service.embed_question(vector_services, question)
    assert vector is not None
    async with transaction(vector_services.sessions) as session:
        found = await answer_context(
            session, tenant.organization_id, tenant.agent_id, question, query_vector=vector
        )
    assert [passage.text for passage in found.passages] == [PRICES]
    assert not found.confident, "a vector's neighbourhood is no answer"


async def test_search_goes_on_by_text_when_the_endpoint_fails(
    vector_services: Services, tenant: Tenant, embeddings: tuple[str, FakeEmbeddingsState]
) -> None:
    await add_text(vector_services, tenant.organization_id, DELIVERY)
    embeddings[1].fail_status = 503
    result = await service.search(
        vector_services, tenant.organization_id, "delivery", agent_id=None, limit=5
    )
    assert [passage.text for passage in result.passages] == [DELIVERY]
    assert not result.vector_search.enabled
    assert result.vector_search.reason == (
        "the embeddings endpoint failed: The embeddings endpoint answered HTTP 503."
    )
    assert await service.embed_question(vector_services, "delivery") is None


async def test_a_document_is_not_stored_when_its_vectors_fail(
    vector_services: Services, tenant: Tenant, embeddings: tuple[str, FakeEmbeddingsState]
) -> None:
    embeddings[1].fail_status = 500
    with pytest.raises(EmbeddingsUnavailableError):
        await add_text(vector_services, tenant.organization_id, PRICES)
    async with transaction(vector_services.sessions) as session:
        assert await session.scalar(select(func.count()).select_from(KnowledgeDocument)) == 0


@pytest.fixture
def database_without_vectors(database_server_url: str) -> Iterator[str]:
    """A database migrated to head as on a server without pgvector: no vector column."""
    name = f"ap_test_novectors_{secrets.token_hex(4)}"
    with psycopg.connect(libpq_url(database_server_url), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(database_server_url).set(database=name).render_as_string(hide_password=False)
    try:
        command.upgrade(alembic_config(url), "head")
        with psycopg.connect(libpq_url(url), autocommit=True) as connection:
            connection.execute("ALTER TABLE knowledge_chunks DROP COLUMN IF EXISTS embedding")
        yield url
    finally:
        with psycopg.connect(libpq_url(database_server_url), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def test_without_pgvector_search_is_full_text_and_says_so_once(
    database_without_vectors: str, settings: Settings, embeddings: tuple[str, FakeEmbeddingsState]
) -> None:
    configured = with_embeddings(settings, embeddings[0], database_without_vectors)
    with capture_logs() as logs:
        async with open_services(configured, database_without_vectors) as services:
            tenant = await create_tenant(services)
            await add_text(services, tenant.organization_id, DELIVERY)
            results = [
                await service.search(
                    services, tenant.organization_id, "delivery", agent_id=None, limit=5
                )
                for _ in range(2)
            ]
    for result in results:
        assert [passage.text for passage in result.passages] == [DELIVERY]
        assert (result.vector_search.enabled, result.vector_search.reason) == (False, NO_PGVECTOR)
    assert [log["event"] for log in logs].count("vector_search_off") == 1
    assert embeddings[1].texts_embedded == 0
