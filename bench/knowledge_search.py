"""Knowledge-base search latency at 10k and 100k chunks: full text, and hybrid (full text and
pgvector, fused by rank) where the database has pgvector.

A database of the run's own is migrated to head and filled with one organization's synthetic
documents, in Russian and English, from a vocabulary whose words follow Zipf's law (some
words are in most chunks, as in real documents), through the platform's own chunking and
repository. For hybrid search every chunk gets a random 1536-dimensional vector and the HNSW
index is built after the load, as a bulk load would. Each size is measured after
`VACUUM ANALYZE`, with warm-up queries first.

What is timed is one search as the API does it once the query's vector is known
(knowledge.service.search_passages): its transaction, the full-text query (and its "any
word" fallback when no chunk has every word), the vector query for hybrid, the fusion and
the passages' details. The embeddings provider's own latency is not included: it is the provider's.

Results go to bench/results/knowledge_search-<UTC timestamp>.json with the machine's details
and the goal (p95 < 50 ms at 100k chunks).

    .venv/bin/python bench/knowledge_search.py --database-url postgresql://postgres@127.0.0.1/postgres
    .venv/bin/python bench/knowledge_search.py            # embedded PostgreSQL (pgserver)
"""

from __future__ import annotations

import argparse
import asyncio
import random
import secrets
import statistics
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness import (
    BenchError,
    bench_database,
    wait_for_quiet_machine,
)
from results_file import REPO_ROOT, RESULTS_DIR, machine_details, write_results

GOAL_P95_MS = 50.0
DOCUMENT_CHARS = 14_000  # about 20 chunks per document
ZIPF_EXPONENT = 1.0

# Topic words customers ask about; searches are made of them.
_TOPIC_WORDS = (
    "sofa chair table delivery price prices warranty order orders payment card cash discount "
    "size colour leather fabric wood oak pine bed mattress pillow kitchen cabinet shelf lamp desk "
    "office return refund exchange week weeks day days moscow city region courier pickup store "
    "showroom assembly installation manager call email phone stock available model catalogue "
    "material quality guarantee years months free cost costs costing shipping fast slow heavy "
    "light soft hard comfortable modern classic corner folding storage drawer mirror wardrobe "
    "диван диваны дивана кресло кресла стол столы доставка доставки доставку цена цены цену "
    "гарантия гарантии заказ заказы оплата оплаты карта картой наличные скидка скидки размер цвет "
    "кожа ткань дерево дуб сосна кровать матрас подушка кухня шкаф полка лампа офис возврат обмен "
    "неделя недели день дня москва москве город область курьер самовывоз магазин салон сборка "
    "установка менеджер звонок почта телефон наличие модель каталог материал качество бесплатно "
    "стоимость быстро удобный современный классический угловой"
)
TOPICS = _TOPIC_WORDS.split()
# The most frequent words of any text; the search configuration leaves them out.
_STOP_WORDS = (
    "the and of to in is for on with you we our it at be are и в на с по для не что это как"
)
STOP_WORDS = _STOP_WORDS.split()
# Rare words: the long tail of a real vocabulary, made of syllables.
TAIL_WORDS = 20_000
SYLLABLES = {
    "latin": [c + v for c in "bdfgklmnprstvz" for v in "aeiou"],
    "cyrillic": [c + v for c in "бвгдзклмнпрстф" for v in "аеиоу"],
}
# Where the first topic word ranks by frequency, and how many ranks apart the next ones are:
# the commonest topic is in about four chunks in ten, the rarest in about one in a hundred.
FIRST_TOPIC_RANK = 20
TOPIC_RANK_STEP = 12


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--database-url",
        help="a PostgreSQL server to create the run's database on; default: embedded pgserver",
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--queries", type=int, default=400, help="timed searches per mode")
    parser.add_argument("--warmup", type=int, default=50, help="untimed searches first")
    parser.add_argument("--limit", type=int, default=5, help="passages per search")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quiet-wait", type=float, default=60.0, help="0: do not wait")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- the corpus


class Words:
    """A vocabulary drawn from by Zipf's law: stop words the commonest, then topic words
    spread among the rarer tail words."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        tail = [self._tail_word() for _ in range(TAIL_WORDS)]
        ranked = STOP_WORDS + tail
        for index, topic in enumerate(TOPICS):
            ranked.insert(FIRST_TOPIC_RANK + index * TOPIC_RANK_STEP, topic)
        self.words = ranked
        self.weights = [1 / rank**ZIPF_EXPONENT for rank in range(1, len(ranked) + 1)]
        rank_of = {word: rank for rank, word in enumerate(ranked, start=1)}
        self.topic_weights = [1 / rank_of[topic] ** ZIPF_EXPONENT for topic in TOPICS]

    def _tail_word(self) -> str:
        alphabet = SYLLABLES[self.rng.choice(list(SYLLABLES))]
        return "".join(self.rng.choices(alphabet, k=self.rng.randint(2, 4)))

    def draw(self, count: int) -> list[str]:
        return self.rng.choices(self.words, weights=self.weights, k=count)

    def draw_topics(self, count: int) -> list[str]:
        return self.rng.choices(TOPICS, weights=self.topic_weights, k=count)


def document_text(words: Words) -> str:
    rng = words.rng
    parts: list[str] = []
    length = 0
    while length < DOCUMENT_CHARS:
        section = [f"## {' '.join(words.draw(rng.randint(1, 3))).capitalize()}"]
        for _ in range(rng.randint(2, 5)):
            sentences = [
                " ".join(words.draw(rng.randint(6, 14))).capitalize() + "."
                for _ in range(rng.randint(2, 6))
            ]
            section.append(" ".join(sentences))
        text = "\n\n".join(section)
        parts.append(text)
        length += len(text)
    return "\n\n".join(parts)


def queries(words: Words, count: int) -> list[str]:
    """Customers' searches: one to four topic words, the common topics most often."""
    return [" ".join(words.draw_topics(words.rng.randint(1, 4))) for _ in range(count)]


# --------------------------------------------------------------------------- the database


async def load_documents(
    services: Any, organization_id: uuid.UUID, chunks: int, words: Words
) -> int:
    """Add documents until the organization has at least `chunks` chunks; how many it has."""
    from sqlalchemy import func, select

    from agent_platform.db.session import scope_to_organization, transaction
    from agent_platform.knowledge import repository
    from agent_platform.knowledge.chunking import split_into_chunks
    from agent_platform.knowledge.models import KnowledgeChunk, KnowledgeDocument

    async with transaction(services.sessions) as session:
        have = await session.scalar(select(func.count()).select_from(KnowledgeChunk)) or 0
    while have < chunks:
        text = document_text(words)
        pieces = split_into_chunks(text)
        async with transaction(services.sessions) as session:
            await scope_to_organization(session, organization_id)
            document = await repository.add_document(
                session,
                KnowledgeDocument(
                    organization_id=organization_id,
                    title=f"Catalogue {have}",
                    kind="markdown",
                    content=text,
                ),
            )
            await repository.add_chunks(session, document, pieces)
        have += len(pieces)
    return int(have)


async def give_vectors(engine: Any) -> float:
    """Random vectors for the chunks that have none, then the HNSW index built anew (as after
    a bulk load: inserting into the index row by row is slower). Seconds it took."""
    from sqlalchemy import text

    started = time.perf_counter()
    async with engine.begin() as connection:
        definition = await connection.scalar(
            text(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'ix_knowledge_chunks_embedding'"
            )
        )
        await connection.execute(text("DROP INDEX ix_knowledge_chunks_embedding"))
        await connection.execute(
            text(
                "UPDATE knowledge_chunks SET embedding = (SELECT array_agg(random() - 0.5)::vector "
                "FROM generate_series(1, 1536) WHERE knowledge_chunks.id IS NOT NULL) "
                "WHERE embedding IS NULL"
            )
        )
    async with engine.connect() as connection:
        await connection.execute(text("SET maintenance_work_mem = '2GB'"))
        await connection.execute(text(definition))
        await connection.commit()
    return time.perf_counter() - started


async def vacuum_analyze(engine: Any) -> None:
    from sqlalchemy import text

    async with engine.connect() as connection:
        await connection.execution_options(isolation_level="AUTOCOMMIT")
        await connection.execute(text("VACUUM ANALYZE knowledge_chunks, knowledge_documents"))


async def database_facts(engine: Any) -> dict[str, Any]:
    from sqlalchemy import text

    async with engine.connect() as connection:
        row = (
            await connection.execute(
                text(
                    "SELECT version(), (SELECT extversion FROM pg_extension WHERE extname = "
                    "'vector'), pg_size_pretty(pg_total_relation_size('knowledge_chunks')), "
                    "(SELECT round(avg(length(content))) FROM knowledge_chunks), "
                    "(SELECT count(*) FROM knowledge_documents)"
                )
            )
        ).one()
    return {
        "postgresql": row[0],
        "pgvector": row[1],
        "chunks_table_with_indexes": row[2],
        "mean_chunk_chars": int(row[3] or 0),
        "documents": int(row[4]),
    }


# --------------------------------------------------------------------------- timing


async def time_searches(
    services: Any,
    organization_id: uuid.UUID,
    searches: list[str],
    vectors: list[list[float]] | None,
    limit: int,
) -> list[float]:
    from agent_platform.knowledge.service import search_passages

    timings: list[float] = []
    for index, query in enumerate(searches):
        started = time.perf_counter()
        await search_passages(
            services,
            organization_id,
            query,
            query_vector=vectors[index] if vectors else None,
            agent_id=None,
            limit=limit,
        )
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def distribution(timings_ms: list[float]) -> dict[str, Any]:
    ordered = sorted(timings_ms)
    cuts = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "searches": len(ordered),
        "p50_ms": round(cuts[49], 2),
        "p95_ms": round(cuts[94], 2),
        "p99_ms": round(cuts[98], 2),
        "mean_ms": round(statistics.fmean(ordered), 2),
        "max_ms": round(ordered[-1], 2),
    }


async def measure(
    services: Any, organization_id: uuid.UUID, words: Words, args: argparse.Namespace, hybrid: bool
) -> dict[str, Any]:
    from tests.fakes.embeddings_server import trigram_vector

    searches = queries(words, args.warmup + args.queries)
    vectors = [trigram_vector(query) for query in searches] if hybrid else None
    modes = {"full_text": None, "hybrid": vectors} if hybrid else {"full_text": None}
    measured: dict[str, Any] = {}
    for mode, mode_vectors in modes.items():
        await time_searches(
            services, organization_id, searches[: args.warmup], mode_vectors, args.limit
        )
        timed = await time_searches(
            services,
            organization_id,
            searches[args.warmup :],
            mode_vectors[args.warmup :] if mode_vectors else None,
            args.limit,
        )
        figures = distribution(timed)
        measured[mode] = figures | {"goal_p95_met": figures["p95_ms"] < GOAL_P95_MS}
    return measured


async def run(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    from alembic import command
    from pydantic import SecretStr

    from agent_platform.config import Settings
    from agent_platform.db.migrate import alembic_config
    from agent_platform.db.session import transaction
    from agent_platform.knowledge.repository import vector_column
    from agent_platform.organization.models import Organization
    from agent_platform.services import open_services

    await asyncio.to_thread(command.upgrade, alembic_config(database_url), "head")
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=database_url,
        encryption_key=SecretStr(secrets.token_urlsafe(40)),
        secret_key=SecretStr(secrets.token_urlsafe(40)),
    )
    words = Words(random.Random(args.seed))
    results: dict[str, Any] = {"sizes": {}}
    async with open_services(settings, database_url) as services:
        async with services.engine.connect() as connection:
            hybrid = (await vector_column(connection)).present
        async with transaction(services.sessions) as session:
            organization = Organization(name="Bench", slug=f"bench-{uuid.uuid4().hex[:6]}")
            session.add(organization)
        for size in sorted(args.sizes):
            started = time.perf_counter()
            chunks = await load_documents(services, organization.id, size, words)
            entry: dict[str, Any] = {"chunks": chunks}
            entry["load_seconds"] = round(time.perf_counter() - started, 1)
            if hybrid:
                entry["vectors_and_index_seconds"] = round(await give_vectors(services.engine), 1)
            await vacuum_analyze(services.engine)
            entry["database"] = await database_facts(services.engine)
            entry |= await measure(services, organization.id, words, args, hybrid)
            if not hybrid:
                entry["hybrid"] = {"skipped": "the database has no pgvector"}
            results["sizes"][str(size)] = entry
            print(summary_line(size, entry), flush=True)
    return results


def summary_line(size: int, entry: dict[str, Any]) -> str:
    parts = [f"{entry['chunks']} chunks (target {size})"]
    for mode in ("full_text", "hybrid"):
        figures = entry[mode]
        if "p95_ms" in figures:
            parts.append(f"{mode}: p50 {figures['p50_ms']} ms, p95 {figures['p95_ms']} ms")
        else:
            parts.append(f"{mode}: {figures['skipped']}")
    return " | ".join(parts)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(REPO_ROOT))  # tests.fakes: the embeddings the tests use
    started_at = datetime.now(UTC)
    machine = machine_details()  # before the run: the commit measured, not a later one
    quiet = wait_for_quiet_machine(args.quiet_wait) if args.quiet_wait > 0 else None
    try:
        with bench_database(args.database_url, "ap_bench_knowledge") as (database_url, server):
            results = asyncio.run(run(args, database_url))
    except BenchError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 1
    results |= {
        "benchmark": "knowledge_search",
        "started_at": started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "parameters": {**vars(args), "results_dir": str(args.results_dir)},
        "database_server": server,
        "goal": f"search p95 < {GOAL_P95_MS:g} ms at 100k chunks",
        "timed": "knowledge.service.search_passages, the query's vector precomputed (docstring)",
        "machine": machine | {"before_start": quiet},
    }
    path = write_results("knowledge_search", results, args.results_dir)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
