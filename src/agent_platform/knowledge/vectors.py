"""Whether vector search is on, and why when it is off.

It needs an embeddings endpoint (EMBEDDINGS_BASE_URL) and the chunks' vector column, which
migration 0006 adds only where the database has pgvector. A database without it is said once
in the log, and in every search answer.
"""

from __future__ import annotations

import structlog
from sqlalchemy.ext.asyncio import AsyncEngine

from agent_platform.knowledge import repository
from agent_platform.knowledge.embeddings import Embedder
from agent_platform.knowledge.repository import VectorColumn
from agent_platform.knowledge.results import VectorSearch

log = structlog.get_logger("knowledge")

NOT_CONFIGURED = "EMBEDDINGS_BASE_URL is not set"
NO_PGVECTOR = (
    "the database has no pgvector: the knowledge base's vector column was not created "
    "(install pgvector before migration 0006 runs)"
)

# Per database, for the life of the process: a running platform's schema does not change.
_columns_by_database: dict[str, VectorColumn] = {}


async def database_vector_column(engine: AsyncEngine) -> VectorColumn:
    database = engine.url.render_as_string(hide_password=True)
    known = _columns_by_database.get(database)
    if known is None:
        async with engine.connect() as connection:
            known = await repository.vector_column(connection)
        _columns_by_database[database] = known
        if not known.present:
            log.warning("vector_search_off", reason=NO_PGVECTOR)
    return known


async def vector_search_state(engine: AsyncEngine, embedder: Embedder | None) -> VectorSearch:
    if embedder is None:
        return VectorSearch(enabled=False, reason=NOT_CONFIGURED)
    if not (await database_vector_column(engine)).present:
        return VectorSearch(enabled=False, reason=NO_PGVECTOR)
    return VectorSearch(enabled=True)
