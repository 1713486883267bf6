"""Every KommoClient endpoint against the Kommo sandbox over real HTTP: what the client sends,
the sandbox accepts, and what the sandbox answers, the client reads into its typed models."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from agent_platform.crm.kommo.client import KommoClient
from agent_platform.crm.kommo.errors import KommoNotFound, KommoValidationError
from agent_platform.crm.kommo.models import (
    LOST_STATUS_ID,
    MEETING_TASK_TYPE_ID,
    WON_STATUS_ID,
    CallInput,
    CallStatus,
    CompanyInput,
    ComplexLeadInput,
    ContactFilter,
    ContactInput,
    ContactUpdate,
    CustomFieldInput,
    EventFilter,
    LeadFilter,
    LeadInput,
    LeadUpdate,
    NoteInput,
    TagInput,
    TagRef,
    TaskFilter,
    TaskInput,
    TaskUpdate,
    TimeRange,
)
from agent_platform.crm.sandbox.store import (
    DEMO_COMPANY_ID,
    DEMO_CONTACT_ID,
    DEMO_CONTACT_PHONE,
    DEMO_LEAD_ID,
    INITIAL_CONTACT_STATUS_ID,
    MANAGER_USER_ID,
    PARTNERS_PIPELINE_ID,
    PIPELINE_ID,
    USER_ID,
)
from tests.contract.sandbox import TOKEN, RunningSandbox, running_sandbox


@pytest.fixture(scope="module")
def sandbox() -> Iterator[RunningSandbox]:
    with running_sandbox(subdomain="contract") as running:
        yield running


@pytest.fixture
async def kommo(sandbox: RunningSandbox) -> AsyncIterator[KommoClient]:
    async with httpx.AsyncClient() as http:
        await sandbox.fresh(http)
        yield KommoClient(sandbox.url, TOKEN, http)


async def test_account(kommo: KommoClient) -> None:
    account = await kommo.account.get()

    assert (account.subdomain, account.current_user_id) == ("contract", USER_ID)


async def test_leads_add_get_and_iterate_with_filters(kommo: KommoClient) -> None:
    fields = await _lead_fields(kommo)
    added = await kommo.leads.add(
        [
            LeadInput(
                name="Website lead",
                price=1200,
                status_id=INITIAL_CONTACT_STATUS_ID,
                custom_fields_values=[
                    CustomFieldInput.of(fields["Budget"], 1200),
                    CustomFieldInput.choice(fields["Lead source"], fields["Lead source/Website"]),
                    CustomFieldInput.of("UTM_SOURCE", "google"),
                ],
                tags=[TagRef(name="inbound")],
                contact_ids=[DEMO_CONTACT_ID],
                request_id="web-1",
            ),
            LeadInput(
                name="Partner lead",
                pipeline_id=PARTNERS_PIPELINE_ID,
                responsible_user_id=MANAGER_USER_ID,
            ),
        ]
    )
    assert [a.request_id for a in added] == ["web-1", "1"]
    web_id, partner_id = (a.id for a in added)

    lead = await kommo.leads.get(web_id, with_=["contacts"])
    assert (lead.name, lead.price, lead.status_id, lead.pipeline_id) == (
        "Website lead",
        1200,
        INITIAL_CONTACT_STATUS_ID,
        PIPELINE_ID,
    )
    assert lead.field_values(fields["Budget"]) == ["1200"]
    assert lead.field_values(fields["Lead source"]) == ["Website"]
    assert lead.field_values("UTM_SOURCE") == ["google"]
    assert [tag.name for tag in lead.tags] == ["inbound"]
    assert [c.id for c in lead.contacts] == [DEMO_CONTACT_ID]

    async def ids(**query: object) -> list[int]:
        return [lead.id async for lead in kommo.leads.iterate(**query)]  # type: ignore[arg-type]

    assert await ids(filter=LeadFilter(statuses=[(PIPELINE_ID, INITIAL_CONTACT_STATUS_ID)])) == [
        DEMO_LEAD_ID,
        web_id,
    ]
    assert await ids(filter=LeadFilter(pipeline_ids=[PARTNERS_PIPELINE_ID])) == [partner_id]
    assert await ids(filter=LeadFilter(ids=[partner_id, web_id])) == [web_id, partner_id]
    assert await ids(filter=LeadFilter(responsible_user_ids=[MANAGER_USER_ID])) == [partner_id]
    assert await ids(filter=LeadFilter(created_at=TimeRange(end=0))) == []
    assert await ids(query="website") == [web_id]
    assert await ids(order=("id", "desc"), page_size=1) == [partner_id, web_id, DEMO_LEAD_ID]
    with_contacts = [lead async for lead in kommo.leads.iterate(with_=["contacts"])]
    assert [[c.id for c in lead.contacts] for lead in with_contacts] == [
        [DEMO_CONTACT_ID],
        [DEMO_CONTACT_ID],
        [],
    ]


async def _lead_fields(kommo: KommoClient) -> dict[str, int]:
    """Field ids by name, and enum ids by "field/choice", as a client learns them."""
    found: dict[str, int] = {}
    async for field in kommo.custom_fields.iterate("leads"):
        found[field.name] = field.id
        for choice in field.enums or []:
            found[f"{field.name}/{choice.value}"] = choice.id
    return found


async def test_leads_update_move_and_close(kommo: KommoClient) -> None:
    [added] = await kommo.leads.add([LeadInput(name="To close")])

    [updated] = await kommo.leads.update(
        [LeadUpdate(id=added.id, price=50, tags=[TagRef(name="hot")])]
    )
    assert updated.id == added.id
    moved = await kommo.leads.move(added.id, WON_STATUS_ID)
    assert moved.updated_at is not None
    await kommo.leads.update_one(LeadUpdate(id=DEMO_LEAD_ID, status_id=LOST_STATUS_ID))

    won, lost = await kommo.leads.get(added.id), await kommo.leads.get(DEMO_LEAD_ID)
    assert (won.price, [t.name for t in won.tags], won.is_won, won.closed_at is not None) == (
        50,
        ["hot"],
        True,
        True,
    )
    assert lost.is_lost
    with pytest.raises(KommoNotFound):
        await kommo.leads.update_one(LeadUpdate(id=999_999, name="nobody"))


async def test_leads_complex_makes_contact_and_company(kommo: KommoClient) -> None:
    [result] = await kommo.leads.add_complex(
        [
            ComplexLeadInput(
                name="Complex",
                contact=ContactInput.person(
                    "Eve", "Adams", phone="+1 202 555 0143", email="eve@example.com"
                ),
                company=CompanyInput(name="Adams LLC"),
            )
        ]
    )

    assert (result.request_id, result.merged) == (["0"], False)
    assert result.contact_id is not None
    assert result.company_id is not None
    contact = await kommo.contacts.get(result.contact_id, with_=["leads"])
    assert (contact.name, contact.phones, contact.emails) == (
        "Eve Adams",
        ["+1 202 555 0143"],
        ["eve@example.com"],
    )
    assert [link.id for link in contact.leads] == [result.id]
    assert [link.id for link in contact.companies] == [result.company_id]


async def test_a_refused_lead_names_its_field(kommo: KommoClient) -> None:
    with pytest.raises(KommoValidationError) as raised:
        await kommo.leads.add([LeadInput(name="ok"), LeadInput(status_id=1, request_id="bad")])

    assert [(i.request_id, i.path) for i in raised.value.issues] == [("bad", "status_id")]


async def test_contacts_add_find_by_phone_and_update(kommo: KommoClient) -> None:
    [added] = await kommo.contacts.add(
        [ContactInput.person("Ann", "Lee", phone="+1 (303) 555-0188")]
    )

    found = [c.id async for c in kommo.contacts.iterate(query="3035550188")]
    by_name = [c.id async for c in kommo.contacts.iterate(filter=ContactFilter(names=["Ann Lee"]))]
    assert found == by_name == [added.id]
    await kommo.contacts.update_one(ContactUpdate(id=added.id, last_name="Smith"))
    [batch] = await kommo.contacts.update(
        [ContactUpdate(id=added.id, custom_fields_values=[CustomFieldInput.of("POSITION", "CTO")])]
    )
    assert batch.id == added.id
    contact = await kommo.contacts.get(added.id)
    assert (contact.name, contact.field_values("POSITION"), contact.phones) == (
        "Ann Smith",
        ["CTO"],
        ["+1 (303) 555-0188"],
    )


async def test_companies_read_and_add(kommo: KommoClient) -> None:
    [added] = await kommo.companies.add([CompanyInput(name="Globex")])

    companies = [c.name async for c in kommo.companies.iterate()]
    demo = await kommo.companies.get(DEMO_COMPANY_ID, with_=["contacts", "leads"])
    assert companies == ["Demo Company", "Globex"]
    assert ([c.id for c in demo.contacts], [lead.id for lead in demo.leads]) == (
        [DEMO_CONTACT_ID],
        [DEMO_LEAD_ID],
    )
    assert [c.id async for c in kommo.companies.iterate(ids=[added.id])] == [added.id]
    with pytest.raises(KommoNotFound):
        await kommo.companies.get(999_999)


async def test_notes_common_and_service_messages(kommo: KommoClient) -> None:
    await kommo.notes.add(
        "leads",
        [
            NoteInput.common(DEMO_LEAD_ID, "Called, no answer"),
            NoteInput.service_message(DEMO_LEAD_ID, "GPT Agent", "Qualified: budget 5k"),
        ],
    )
    await kommo.notes.add("contacts", [NoteInput.common(DEMO_CONTACT_ID, "Prefers e-mail")])

    on_lead = [(n.note_type, n.text) async for n in kommo.notes.iterate("leads", DEMO_LEAD_ID)]
    service = [n.params async for n in kommo.notes.iterate("leads", note_types=["service_message"])]
    newest = await kommo.notes.latest("leads", DEMO_LEAD_ID, limit=1)
    assert on_lead == [("common", "Called, no answer"), ("service_message", "Qualified: budget 5k")]
    assert service == [{"service": "GPT Agent", "text": "Qualified: budget 5k"}]
    assert [n.text for n in newest] == ["Qualified: budget 5k"]
    assert [n.text async for n in kommo.notes.iterate("contacts")] == ["Prefers e-mail"]
    assert [n async for n in kommo.notes.iterate("companies")] == []


async def test_tasks_create_list_and_complete(kommo: KommoClient) -> None:
    added = await kommo.tasks.add(
        [
            TaskInput(
                text="Call back about the offer",
                complete_till=2_000_000_000,
                entity_type="leads",
                entity_id=DEMO_LEAD_ID,
                responsible_user_id=MANAGER_USER_ID,
            ),
            TaskInput(text="Meet", complete_till=2_000_000_100, task_type_id=MEETING_TASK_TYPE_ID),
        ]
    )
    call_id, meeting_id = (a.id for a in added)

    on_lead = TaskFilter(entity_type="leads", entity_ids=[DEMO_LEAD_ID])
    assert [t.id async for t in kommo.tasks.iterate(filter=on_lead)] == [call_id]
    meetings = TaskFilter(task_type_ids=[MEETING_TASK_TYPE_ID])
    assert [t.id async for t in kommo.tasks.iterate(filter=meetings)] == [meeting_id]
    by_deadline = [t.id async for t in kommo.tasks.iterate(order=("complete_till", "desc"))]
    assert by_deadline == [meeting_id, call_id]

    await kommo.tasks.complete(call_id, "Agreed on a demo")
    await kommo.tasks.update(
        [TaskUpdate(id=meeting_id, text="Meet at the office", complete_till=2_000_000_200)]
    )

    done = await kommo.tasks.get(call_id)
    assert (done.is_completed, done.result_text, done.responsible_user_id) == (
        True,
        "Agreed on a demo",
        MANAGER_USER_ID,
    )
    open_tasks = [t.text async for t in kommo.tasks.iterate(filter=TaskFilter(is_completed=False))]
    assert open_tasks == ["Meet at the office"]


async def test_updating_an_unknown_record_is_refused_and_changes_nothing(
    kommo: KommoClient,
) -> None:
    before = await kommo.contacts.get(DEMO_CONTACT_ID)

    with pytest.raises(KommoValidationError) as contacts:
        await kommo.contacts.update(
            [ContactUpdate(id=DEMO_CONTACT_ID, last_name="Changed"), ContactUpdate(id=999_999)]
        )
    with pytest.raises(KommoValidationError) as tasks:
        await kommo.tasks.update([TaskUpdate(id=999_999, text="Call again")])
    with pytest.raises(KommoNotFound):
        await kommo.contacts.update_one(ContactUpdate(id=999_999, last_name="Changed"))
    with pytest.raises(KommoNotFound):
        await kommo.tasks.complete(999_999, "Done")

    assert [(i.request_id, i.path, i.code) for i in contacts.value.issues] == [
        ("1", "id", "NotFound")
    ]
    assert [(i.request_id, i.path, i.code) for i in tasks.value.issues] == [("0", "id", "NotFound")]
    assert await kommo.contacts.get(DEMO_CONTACT_ID) == before


async def test_calls_are_logged_on_the_open_lead_or_reported(kommo: KommoClient) -> None:
    result = await kommo.calls.add(
        [
            CallInput(
                direction="inbound",
                duration=95,
                source="Twilio",
                phone=DEMO_CONTACT_PHONE,
                uniq="call-1",
                link="https://calls.example/1.mp3",
                call_status=CallStatus.CONVERSATION,
                call_result="Interested",
                responsible_user_id=USER_ID,
                created_by=USER_ID,
            ),
            CallInput(
                direction="outbound",
                duration=0,
                source="Twilio",
                phone="+1 999 999 9999",
                request_id="nobody",
            ),
        ]
    )

    [call] = result.calls
    assert (call.entity_type, call.entity_id, call.request_id) == ("lead", DEMO_LEAD_ID, "0")
    assert [(e.request_id, e.status) for e in result.errors] == [("nobody", 404)]
    [note] = await kommo.notes.latest("leads", DEMO_LEAD_ID)
    assert (note.note_type, note.params["call_status"], note.params["link"]) == (
        "call_in",
        4,
        "https://calls.example/1.mp3",
    )


async def test_pipelines_end_with_won_and_lost(kommo: KommoClient) -> None:
    pipelines = await kommo.pipelines.all()

    assert [p.id for p in pipelines] == [PIPELINE_ID, PARTNERS_PIPELINE_ID]
    for pipeline in pipelines:
        assert [s.id for s in pipeline.statuses][-2:] == [WON_STATUS_ID, LOST_STATUS_ID]
        assert pipeline.statuses[0].type == 1
    main = await kommo.pipelines.get(PIPELINE_ID)
    assert main.is_main
    with pytest.raises(KommoNotFound):
        await kommo.pipelines.get(1)


async def test_users(kommo: KommoClient) -> None:
    users = [user async for user in kommo.users.iterate()]

    assert [(u.id, u.is_admin) for u in users] == [(USER_ID, True), (MANAGER_USER_ID, False)]
    assert (await kommo.users.get(MANAGER_USER_ID)).name == "Sales Manager"


async def test_custom_field_definitions(kommo: KommoClient) -> None:
    lead_fields = [f async for f in kommo.custom_fields.iterate("leads")]
    [phone] = [f async for f in kommo.custom_fields.iterate("contacts") if f.code == "PHONE"]

    source = next(f for f in lead_fields if f.type == "select")
    assert source.enum_id("referral") is not None
    assert source.enum_id("carrier pigeon") is None
    assert phone.type == "multitext"
    assert [e.value for e in phone.enums or []][:3] == ["WORK", "WORKDD", "MOB"]
    assert (await kommo.custom_fields.get("contacts", phone.id)).code == "PHONE"


async def test_tags(kommo: KommoClient) -> None:
    added = await kommo.tags.add(
        "leads", [TagInput(name="vip", color="DDEBB5"), TagInput(name="cold")]
    )

    assert [t.name for t in added] == ["vip", "cold"]
    assert [t.id async for t in kommo.tags.iterate("leads", name="VIP")] == [added[0].id]
    assert [t.name async for t in kommo.tags.iterate("leads", query="co")] == ["cold"]
    assert [t async for t in kommo.tags.iterate("contacts")] == []


async def test_events(kommo: KommoClient) -> None:
    await kommo.leads.move(DEMO_LEAD_ID, WON_STATUS_ID)
    [added] = await kommo.leads.add([LeadInput(name="Evented")])

    changes = [
        e async for e in kommo.events.iterate(filter=EventFilter(types=["lead_status_changed"]))
    ]
    on_new = [
        e.type
        async for e in kommo.events.iterate(
            filter=EventFilter(entities=["lead"], entity_ids=[added.id])
        )
    ]
    assert [(e.entity_type, e.entity_id) for e in changes] == [("lead", DEMO_LEAD_ID)]
    assert changes[0].value_after == [
        {"lead_status": {"id": WON_STATUS_ID, "pipeline_id": PIPELINE_ID}}
    ]
    assert on_new == ["lead_added"]
    assert (await kommo.events.get(changes[0].id)).type == "lead_status_changed"


async def test_webhook_subscriptions(kommo: KommoClient) -> None:
    destination = "https://platform.example/webhooks/kommo/token-1"

    webhook = await kommo.webhooks.subscribe(destination, ["add_lead", "note_lead"])

    assert (webhook.destination, webhook.settings, webhook.disabled) == (
        destination,
        ["add_lead", "note_lead"],
        False,
    )
    assert [w.id for w in await kommo.webhooks.all(destination=destination)] == [webhook.id]
    assert await kommo.webhooks.unsubscribe(destination) is True
    assert await kommo.webhooks.unsubscribe(destination) is False
    assert await kommo.webhooks.all() == []
