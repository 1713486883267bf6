"""Knowledge-base search and the answer context on the real PostgreSQL: Russian and English
word forms, every word before any word, web-search syntax, which agent sees what, other
organizations never, FAQ answers above the threshold only, and when the answer is confident."""

from __future__ import annotations

import uuid

import pytest

from agent_platform.db.session import transaction
from agent_platform.knowledge import service
from agent_platform.knowledge.results import KnowledgeAnswer
from agent_platform.knowledge.retrieval import DEFAULT_FAQ_THRESHOLD, answer_context
from agent_platform.services import Services
from tests.support.knowledge import Tenant, add_text, create_tenant

PRICES = "# Prices\n\nOur price list: a sofa costs 900 USD, an armchair 400 USD."
DELIVERY = "# Delivery\n\nDelivery is free in Moscow; elsewhere it takes a week."
RUSSIAN = "# Доставка\n\nЦена доставки по Москве — 500 рублей, по области — 900 рублей."


@pytest.fixture
async def tenant(services: Services) -> Tenant:
    return await create_tenant(services)


async def texts_found(
    services: Services, tenant: Tenant, query: str, agent_id: uuid.UUID | None = None
) -> list[str]:
    result = await service.search(
        services, tenant.organization_id, query, agent_id=agent_id, limit=10
    )
    return [passage.text for passage in result.passages]


async def answer(
    services: Services, tenant: Tenant, question: str, faq_threshold: float = DEFAULT_FAQ_THRESHOLD
) -> KnowledgeAnswer:
    async with transaction(services.sessions) as session:
        return await answer_context(
            session, tenant.organization_id, tenant.agent_id, question, faq_threshold=faq_threshold
        )


async def add_faq(
    services: Services,
    tenant: Tenant,
    question: str,
    answer_text: str,
    *,
    enabled: bool = True,
    agent_id: uuid.UUID | None = None,
) -> None:
    await service.add_faq(
        services,
        tenant.organization_id,
        question=question,
        answer=answer_text,
        enabled=enabled,
        agent_id=agent_id,
    )


async def test_russian_word_forms_find_each_other(services: Services, tenant: Tenant) -> None:
    await add_text(services, tenant.organization_id, RUSSIAN)
    for query in ["цены", "цена", "ЦЕНУ", "доставку", "москва"]:
        assert await texts_found(services, tenant, query) == [RUSSIAN], query


async def test_english_word_forms_find_each_other(services: Services, tenant: Tenant) -> None:
    await add_text(services, tenant.organization_id, PRICES)
    for query in ["prices", "price", "Pricing", "costing"]:
        assert await texts_found(services, tenant, query) == [PRICES], query


async def test_passages_come_with_their_source(services: Services, tenant: Tenant) -> None:
    record = await add_text(services, tenant.organization_id, PRICES, title="Price list 2027")
    result = await service.search(services, tenant.organization_id, "sofa", agent_id=None, limit=5)
    (passage,) = result.passages
    assert (passage.document_id, passage.document_title, passage.heading) == (
        record.document.id,
        "Price list 2027",
        "Prices",
    )
    assert 0 < passage.score <= 1
    assert result.vector_search.reason == "EMBEDDINGS_BASE_URL is not set"


async def test_every_word_is_searched_first_then_any_word(
    services: Services, tenant: Tenant
) -> None:
    await add_text(services, tenant.organization_id, PRICES)
    await add_text(services, tenant.organization_id, DELIVERY)

    both = await service.search(
        services, tenant.organization_id, "free delivery", agent_id=None, limit=5
    )
    assert both.every_word_matched
    assert [passage.text for passage in both.passages] == [DELIVERY]

    either = await service.search(
        services, tenant.organization_id, "sofa delivery", agent_id=None, limit=5
    )
    assert not either.every_word_matched
    assert {passage.text for passage in either.passages} == {PRICES, DELIVERY}


async def test_a_heading_outranks_a_mention(services: Services, tenant: Tenant) -> None:
    mention = "# Showroom\n\nCome and see; delivery details are on another page."
    await add_text(services, tenant.organization_id, mention)
    await add_text(services, tenant.organization_id, DELIVERY)
    assert await texts_found(services, tenant, "delivery") == [DELIVERY, mention]


async def test_web_search_syntax_is_understood_and_never_fails(
    services: Services, tenant: Tenant
) -> None:
    await add_text(services, tenant.organization_id, PRICES)
    await add_text(services, tenant.organization_id, DELIVERY)
    assert await texts_found(services, tenant, "usd -armchair") == []
    assert await texts_found(services, tenant, '"sofa costs"') == [PRICES]
    assert sorted(await texts_found(services, tenant, "sofa or moscow")) == [DELIVERY, PRICES]
    for awkward in ['"sofa', "sofa & | ! :* (", "' OR 1=1 --", "the and"]:
        await texts_found(services, tenant, awkward)


async def test_an_agent_sees_shared_documents_and_its_own(
    services: Services, tenant: Tenant
) -> None:
    shared = await add_text(services, tenant.organization_id, "Shared: warranty two years.")
    own = await add_text(
        services, tenant.organization_id, "Sales: warranty three years.", agent_id=tenant.agent_id
    )
    await add_text(
        services,
        tenant.organization_id,
        "Support: warranty five years.",
        agent_id=tenant.other_agent_id,
    )
    seen = await texts_found(services, tenant, "warranty", agent_id=tenant.agent_id)
    assert sorted(seen) == sorted([shared.document.content, own.document.content])
    assert len(await texts_found(services, tenant, "warranty")) == 3


async def test_another_organizations_documents_are_never_found(
    services: Services, tenant: Tenant
) -> None:
    other = await create_tenant(services, "Rival")
    await add_text(services, other.organization_id, PRICES)
    assert await texts_found(services, tenant, "sofa") == []
    assert (await answer(services, tenant, "sofa price")).passages == []


async def test_an_faq_answers_directly_at_or_above_the_threshold(
    services: Services, tenant: Tenant
) -> None:
    await add_faq(services, tenant, "How much does delivery cost?", "Free in Moscow.")
    await add_faq(services, tenant, "Сколько стоит доставка?", "Бесплатно по Москве.")

    exact = await answer(services, tenant, "how much does delivery cost")
    assert exact.faq is not None
    assert (exact.faq.answer, exact.faq.score, exact.confident) == ("Free in Moscow.", 1.0, True)

    wordier = await answer(services, tenant, "Hi! How much does the delivery cost to Moscow?")
    assert wordier.faq is not None
    assert wordier.faq.answer == "Free in Moscow."
    assert 0.5 <= wordier.faq.score < 1

    russian = await answer(services, tenant, "сколько стоит доставка в Москву")
    assert russian.faq is not None
    assert russian.faq.answer == "Бесплатно по Москве."


async def test_an_faq_does_not_answer_a_question_about_something_else(
    services: Services, tenant: Tenant
) -> None:
    await add_faq(services, tenant, "How much does delivery cost?", "Free in Moscow.")
    await add_faq(services, tenant, "Сколько стоит доставка?", "Бесплатно по Москве.")
    for question in ["How much does a sofa cost?", "Сколько стоит диван?", "Do you sell shoes?"]:
        found = await answer(services, tenant, question)
        assert found.faq is None, question
        assert not found.confident


async def test_the_faq_threshold_is_chosen_per_call(services: Services, tenant: Tenant) -> None:
    await add_faq(services, tenant, "How much does delivery cost?", "Free in Moscow.")
    question = "Hi! How much does the delivery cost to Moscow?"
    assert (await answer(services, tenant, question, faq_threshold=0.95)).faq is None
    assert (await answer(services, tenant, question, faq_threshold=0.3)).faq is not None


async def test_disabled_and_other_agents_faqs_do_not_answer(
    services: Services, tenant: Tenant
) -> None:
    await add_faq(services, tenant, "Do you deliver?", "Yes.", enabled=False)
    await add_faq(
        services, tenant, "Do you deliver?", "Only support knows.", agent_id=tenant.other_agent_id
    )
    assert (await answer(services, tenant, "Do you deliver?")).faq is None
    await add_faq(services, tenant, "Do you deliver?", "Sales says yes.", agent_id=tenant.agent_id)
    found = await answer(services, tenant, "Do you deliver?")
    assert found.faq is not None
    assert found.faq.answer == "Sales says yes."


async def test_passages_are_confident_only_when_they_hold_every_word(
    services: Services, tenant: Tenant
) -> None:
    await add_text(services, tenant.organization_id, PRICES)

    every_word = await answer(services, tenant, "sofa price")
    assert every_word.confident
    assert [passage.text for passage in every_word.passages] == [PRICES]

    some_words = await answer(services, tenant, "sofa delivery to Kazan")
    assert not some_words.confident
    assert [passage.text for passage in some_words.passages] == [PRICES]

    nothing = await answer(services, tenant, "opening hours")
    assert (nothing.faq, nothing.passages, nothing.confident) == (None, [], False)
