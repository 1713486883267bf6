"""The dashboard (/app) over plain HTTP: the exact figures of rows written to the database, an
empty organization, and another organization's rows never counted."""

from __future__ import annotations

import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx

from agent_platform.automation.clock import UTC_ZONE
from agent_platform.automation.models import LeadSnapshot
from agent_platform.conversation.models import Conversation, Message
from agent_platform.crm.models import CrmConnection, CrmDelivery, InboxEvent
from agent_platform.dashboard.figures import chart_days
from agent_platform.db.session import transaction
from agent_platform.llm.budget import month_start
from agent_platform.llm.models import LlmBudget, LlmCall
from agent_platform.services import Services
from tests.support.people import Person, create_person
from tests.support.web_client import signed_in


@dataclass(frozen=True)
class Moments:
    """When the seeded rows happened, chosen so that each falls in its day whatever the hour."""

    now: datetime
    today: datetime  # between today's midnight (UTC, the organization's zone) and now
    day_before: datetime  # more than 24 hours ago: not today, out of the inbox's window
    three_days_ago: datetime
    long_ago: datetime  # before the 7 days
    this_month: datetime


def moments() -> Moments:
    now = datetime.now(UTC)
    today_start = chart_days(now, UTC_ZONE)[-1].start
    month = month_start(now)
    return Moments(
        now=now,
        today=today_start + (now - today_start) / 2,
        day_before=now - timedelta(hours=25),
        three_days_ago=now - timedelta(days=3),
        long_ago=now - timedelta(days=10),
        this_month=month + (now - month) / 2,
    )


async def seed_activity(services: Services, organization_id: uuid.UUID, at: Moments) -> None:
    """Conversations, messages, webhook events, deliveries, LLM calls, a budget and snapshots
    whose figures the dashboard must show exactly (see test_the_dashboard_shows_…)."""
    async with transaction(services.sessions) as session:
        connection = CrmConnection(
            organization_id=organization_id,
            subdomain=f"acme-{secrets.token_hex(3)}",
            base_url="https://acme.kommo.com",
            webhook_token=secrets.token_hex(16),
        )
        session.add(connection)
        await session.flush()

        def conversation(lead_id: int, **state: object) -> Conversation:
            return Conversation(
                organization_id=organization_id,
                connection_id=connection.id,
                entity_type="leads",
                entity_id=lead_id,
                **state,
            )

        def event(received_at: datetime, status: str = "handled") -> InboxEvent:
            return InboxEvent(
                organization_id=organization_id,
                connection_id=connection.id,
                source="kommo",
                dedupe_key=secrets.token_hex(8),
                payload={},
                received_at=received_at,
                status=status,
            )

        def message(talk: Conversation, role: str, at: datetime, **fields: object) -> Message:
            return Message(
                organization_id=organization_id,
                conversation_id=talk.id,
                role=role,
                content=f"{role} wrote",
                created_at=at,
                **fields,
            )

        def delivery(key: str, sent_at: datetime | None, status: str = "sent") -> CrmDelivery:
            return CrmDelivery(
                organization_id=organization_id,
                connection_id=connection.id,
                idempotency_key=key,
                kind="message",
                entity_type="leads",
                entity_id=101,
                payload={},
                status=status,
                sent_at=sent_at,
            )

        answered = conversation(101)
        waiting = conversation(102, handed_off_at=at.today)
        burst = conversation(103, handed_off_at=at.three_days_ago)
        old = conversation(104, handed_off_at=at.long_ago)
        session.add_all([answered, waiting, burst, old])
        first, second, burst_first, burst_second, old_event = (
            event(at.day_before),
            event(at.today, status="pending"),
            event(at.three_days_ago),
            event(at.three_days_ago + timedelta(minutes=1)),
            event(at.long_ago),
        )
        ignored_failure = event(at.now - timedelta(hours=2), status="failed")
        session.add_all([first, second, burst_first, burst_second, old_event, ignored_failure])
        await session.flush()
        session.add_all(
            [
                # Answered in 90 s.
                message(answered, "user", at.day_before, inbox_event_id=first.id),
                message(answered, "assistant", at.day_before + timedelta(seconds=90)),
                # Waiting for an answer: active today, not in the median.
                message(waiting, "user", at.today, inbox_event_id=second.id),
                # Two messages covered by one reply: answered in 5 min and 4 min.
                message(burst, "user", at.three_days_ago, inbox_event_id=burst_first.id),
                message(
                    burst,
                    "user",
                    at.three_days_ago + timedelta(minutes=1),
                    inbox_event_id=burst_second.id,
                ),
                message(burst, "tool", at.three_days_ago + timedelta(minutes=2)),
                message(burst, "assistant", at.three_days_ago + timedelta(minutes=5)),
                message(old, "user", at.long_ago, inbox_event_id=old_event.id),
                delivery(f"reply:{first.id}", at.day_before + timedelta(seconds=90)),
                delivery(f"reply:{burst_second.id}", at.three_days_ago + timedelta(minutes=5)),
                delivery(f"follow_up:{secrets.token_hex(4)}", at.today),
                # Neither a reply nor sent: not counted.
                delivery(f"note:{secrets.token_hex(4)}", at.today),
                delivery(f"reply:{second.id}", None, status="pending"),
                delivery(f"reply:{old_event.id}", at.long_ago),
                LeadSnapshot(
                    organization_id=organization_id,
                    connection_id=connection.id,
                    lead_id=101,
                    facts={"pipeline_id": 7, "status_id": 142},
                ),
                LeadSnapshot(
                    organization_id=organization_id,
                    connection_id=connection.id,
                    lead_id=102,
                    facts={"pipeline_id": 7, "status_id": 142},
                ),
                LlmCall(
                    organization_id=organization_id,
                    model_requested="test/model",
                    model_used="test/model",
                    status="ok",
                    tokens_in=1000,
                    tokens_out=50,
                    cost_usd=Decimal("0.5"),
                    cost_source="provider",
                    created_at=at.this_month,
                ),
                LlmCall(
                    organization_id=organization_id,
                    model_requested="test/model",
                    model_used="test/model",
                    status="ok",
                    tokens_in=234,
                    tokens_out=6,
                    cost_usd=Decimal("0.25"),
                    cost_source="price_table",
                    created_at=at.this_month,
                ),
                LlmBudget(organization_id=organization_id, monthly_limit_usd=Decimal("10")),
            ]
        )


def figure(page: httpx.Response, test_id: str) -> str:
    """The text of the element marked `data-testid=test_id`, spaces collapsed."""
    found = re.search(rf'data-testid="{test_id}"[^>]*>(.*?)</', page.text, re.DOTALL)
    assert found, f"no {test_id} on the page"
    # ASCII spaces only: the Russian figures' no-break spaces are part of them.
    return re.sub(r"[ \t\n]+", " ", re.sub(r"<[^>]+>", " ", found.group(1))).strip()


async def dashboard_of(api_url: str, person: Person) -> httpx.Response:
    async with signed_in(api_url, person) as client:
        page = await client.get("/app")
    assert page.status_code == 200, page.text
    return page


async def test_the_dashboard_shows_the_figures_of_the_organizations_rows(
    api_url: str, services: Services
) -> None:
    person = await create_person(services)
    await seed_activity(services, person.organization_id, moments())

    page = await dashboard_of(api_url, person)

    assert figure(page, "conversations-today") == "1"
    assert figure(page, "conversations-7-days") == "3"
    assert figure(page, "replies-today") == "1"
    assert figure(page, "replies-7-days") == "3"
    # The median of 90 s, 5 min and 4 min.
    assert figure(page, "first-response") == "4 min 0 s"
    assert figure(page, "answered-messages") == "over 3 answered customer messages in 7 days"
    assert figure(page, "handoffs-today") == "1"
    assert figure(page, "handoffs-7-days") == "2"
    assert figure(page, "llm-spent") == "$0.75"
    assert figure(page, "llm-limit") == "of $10.00 budget (7.5%)"
    assert figure(page, "llm-tokens-in") == "1,234"
    assert figure(page, "llm-tokens-out") == "56"
    assert figure(page, "llm-calls") == "2"
    assert 'data-testid="budget-bar"' in page.text
    assert '<rect class="budget-used" x="0" y="0" width="7.5" height="6">' in page.text
    assert re.search(r"pipeline 7 / stage 142\s*</td>\s*<td[^>]*>2<", page.text)
    assert re.search(r"stage not seen yet\s*</td>\s*<td[^>]*>1<", page.text)
    assert figure(page, "webhook-failures-share") == "50.0%"
    assert figure(page, "webhook-failures-count") == "1 of 2 events received"
    assert figure(page, "queue-waiting") == "0"
    assert 'data-testid="conversations-chart"' in page.text
    assert 'data-testid="replies-chart"' in page.text


async def test_an_empty_organization_shows_zeros_and_no_data(
    api_url: str, services: Services
) -> None:
    person = await create_person(services)

    page = await dashboard_of(api_url, person)

    assert figure(page, "organization-name") == "Acme Sales"
    assert figure(page, "conversations-today") == "0"
    assert figure(page, "conversations-7-days") == "0"
    assert figure(page, "replies-7-days") == "0"
    assert figure(page, "conversations-no-data") == "No data yet."
    assert figure(page, "replies-no-data") == "No data yet."
    assert figure(page, "first-response") == "—"
    assert figure(page, "handoffs-7-days") == "0"
    assert figure(page, "llm-spent") == "$0.00"
    assert figure(page, "llm-limit") == "no monthly budget set"
    assert figure(page, "stages-no-data") == "No data yet."
    assert figure(page, "job-failures") == "nothing yet"
    assert figure(page, "webhook-failures") == "nothing yet"
    assert "<svg" not in page.text


async def test_another_organizations_rows_never_count(api_url: str, services: Services) -> None:
    at = moments()
    busy = await create_person(services, organization_name="Busy Ltd")
    await seed_activity(services, busy.organization_id, at)
    quiet = await create_person(services, organization_name="Quiet Ltd")

    page = await dashboard_of(api_url, quiet)

    assert figure(page, "conversations-7-days") == "0"
    assert figure(page, "replies-7-days") == "0"
    assert figure(page, "first-response") == "—"
    assert figure(page, "handoffs-7-days") == "0"
    assert figure(page, "llm-tokens-in") == "0"
    assert figure(page, "llm-limit") == "no monthly budget set"
    assert figure(page, "webhook-failures") == "nothing yet"
    assert figure(page, "stages-no-data") == "No data yet."


async def test_the_dashboard_reads_in_russian(api_url: str, services: Services) -> None:
    person = await create_person(services)
    await seed_activity(services, person.organization_id, moments())

    async with signed_in(api_url, person) as client:
        client.cookies.set("lang", "ru")
        page = await client.get("/app")

    assert figure(page, "first-response") == "4 мин 0 с"
    assert figure(page, "llm-tokens-in") == "1\u00a0234"
    assert figure(page, "llm-limit") == "из бюджета 10,00\u00a0$ (7,5\u00a0%)"
