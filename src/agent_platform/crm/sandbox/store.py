"""The sandbox's in-memory Kommo account: its records, its setup, its event feed and its hooks.

The sandbox is for demos, development and tests, so state lives in the process and a restart
or `reset()` returns to the seeded account. Records hold data only; the Kommo JSON shape and
the validation of what clients send are the HTTP layer's business (`api_*.py`).

What other parts of the sandbox read and hook into:
- `subscribe(listener)`: `listener(entity, action, record)` is called after every change, with
  `entity` one of "leads", "contacts", "companies", "tasks", "talks", "messages" and `action`
  one of Kommo's webhook actions: "add", "update", "delete" for leads, contacts, companies and
  tasks; for leads also "status" (the stage changed) and "responsible" (the owner changed),
  sent after the "update" of the same change; for contacts "responsible" too; "note" for a
  lead, contact or company that got a note (`record` is then the `Note`); "add" and "update"
  for a lead's talk (`Talk`) and "add" for a chat message (`Message`, incoming or outgoing).
  One more, not a webhook: ("salesbot", "widget_request", `SalesbotRun`) when the Salesbot
  calls its widget. Listeners run synchronously in the thread that made the change (the
  sandbox's event loop for HTTP calls): they must be quick and must not block; schedule
  real work (sending a webhook) instead. An exception in a listener is logged and does not
  undo the change. `subscribe` returns a function that unsubscribes.
- `webhooks()` / `webhooks_for("add_lead")`: the subscriptions clients made over the API.
- Chats: `add_incoming_message(lead_id, text)` (the customer writes) and
  `add_outgoing_message(lead_id, text, user_id)` (a manager does); `talk_of`, `messages_of`.
- `requests`: the API requests the sandbox answered, `(method, path, status, at)` with `at`
  from `time.monotonic()` (for counting requests per second); the inspection endpoints under
  /sandbox/ are not logged. `record_request` adds one (the request-log middleware calls it).
- `gateway_timeout_above`: when set, a batch write of more items than this is answered 504
  without writing anything (to exercise a client's halving of batches).
- `salesbot_widget_url`: when set, every incoming message starts the Salesbot, which calls
  this URL with the message (a `SalesbotRun`, see `salesbot_runs_of`) and waits.
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NamedTuple, TypeVar

import structlog

log = structlog.get_logger("kommo.sandbox")

EntityType = Literal["leads", "contacts", "companies"]
ENTITY_TYPES: tuple[EntityType, ...] = ("leads", "contacts", "companies")
# Events name entities in the singular.
EVENT_ENTITY = {"leads": "lead", "contacts": "contact", "companies": "company", "tasks": "task"}

ACCOUNT_ID = 30_000_001
# The owner of the access token and of every record unless a client says otherwise.
USER_ID = 1_000_001
MANAGER_USER_ID = 1_000_002

# Every Kommo pipeline opens with an incoming-leads stage and ends with the fixed ids
# 142 "Closed - won" and 143 "Closed - lost", which all pipelines share.
WON_STATUS_ID = 142
LOST_STATUS_ID = 143
CLOSED_STATUS_IDS = (WON_STATUS_ID, LOST_STATUS_ID)
PIPELINE_ID = 7_000_001
INCOMING_STATUS_ID = 7_000_011
INITIAL_CONTACT_STATUS_ID = 7_000_012
STATUS_IDS = (INCOMING_STATUS_ID, INITIAL_CONTACT_STATUS_ID, 7_000_013, 7_000_014, 142, 143)
PARTNERS_PIPELINE_ID = 7_000_002
PARTNERS_INCOMING_STATUS_ID = 7_000_021
PARTNERS_NEGOTIATION_STATUS_ID = 7_000_022

FOLLOW_UP_TASK_TYPE_ID = 1
MEETING_TASK_TYPE_ID = 2
TASK_TYPE_IDS = (FOLLOW_UP_TASK_TYPE_ID, MEETING_TASK_TYPE_ID)

# Custom fields of the account. Contacts and companies have Kommo's predefined PHONE and
# EMAIL (multitext: each value has a kind, WORK by default); leads have a few of each type.
LEAD_BUDGET_FIELD_ID = 8_000_001
LEAD_SOURCE_FIELD_ID = 8_000_002
LEAD_SOURCE_WEBSITE_ENUM_ID = 8_100_001
LEAD_SOURCE_REFERRAL_ENUM_ID = 8_100_002
LEAD_SOURCE_ADS_ENUM_ID = 8_100_003
LEAD_COMMENT_FIELD_ID = 8_000_003
LEAD_QUALIFIED_FIELD_ID = 8_000_004
LEAD_UTM_SOURCE_FIELD_ID = 8_000_005
CONTACT_PHONE_FIELD_ID = 8_000_011
CONTACT_EMAIL_FIELD_ID = 8_000_012
CONTACT_POSITION_FIELD_ID = 8_000_013
COMPANY_PHONE_FIELD_ID = 8_000_021
COMPANY_WEB_FIELD_ID = 8_000_022

# Seeded records keep their ids across resets, so the demo page and tests can name them.
DEMO_CONTACT_ID = 1_001
DEMO_LEAD_ID = 1_002
DEMO_COMPANY_ID = 1_003
DEMO_CONTACT_PHONE = "+1 415 555 0100"
DEMO_CONTACT_EMAIL = "demo.contact@example.com"

REQUEST_LOG_SIZE = 10_000

# The code of the sandbox's chat channel in talks and messages (Kommo says waba, telegram…).
CHAT_ORIGIN = "sandbox"
# The account's Salesbot: the one that calls a widget with the customer's message and waits.
SALESBOT_ID = 9_000_001


# --- the account's setup (fixed) --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Stage:
    id: int
    name: str
    sort: int
    color: str
    type: int = 0  # 1 for the incoming-leads stage
    is_editable: bool = True


@dataclass(frozen=True, slots=True)
class Pipeline:
    id: int
    name: str
    sort: int
    is_main: bool
    stages: tuple[Stage, ...]

    def stage(self, status_id: int) -> Stage | None:
        return next((stage for stage in self.stages if stage.id == status_id), None)


def _closing_stages() -> tuple[Stage, ...]:
    return (
        Stage(WON_STATUS_ID, "Closed - won", 10_000, "#CCFF66", is_editable=False),
        Stage(LOST_STATUS_ID, "Closed - lost", 11_000, "#D5D8DB", is_editable=False),
    )


PIPELINES = (
    Pipeline(
        PIPELINE_ID,
        "Sales",
        1,
        True,
        (
            Stage(INCOMING_STATUS_ID, "Incoming leads", 10, "#c1c1c1", type=1, is_editable=False),
            Stage(INITIAL_CONTACT_STATUS_ID, "Initial contact", 20, "#99ccff"),
            Stage(7_000_013, "Offer made", 30, "#ffff99"),
            Stage(7_000_014, "Negotiation", 40, "#ffcc66"),
            *_closing_stages(),
        ),
    ),
    Pipeline(
        PARTNERS_PIPELINE_ID,
        "Partners",
        2,
        False,
        (
            Stage(
                PARTNERS_INCOMING_STATUS_ID,
                "Incoming leads",
                10,
                "#c1c1c1",
                type=1,
                is_editable=False,
            ),
            Stage(PARTNERS_NEGOTIATION_STATUS_ID, "Negotiation", 20, "#ffcc66"),
            *_closing_stages(),
        ),
    ),
)


@dataclass(frozen=True, slots=True)
class User:
    id: int
    name: str
    email: str
    is_admin: bool
    lang: str = "en"


USERS = (
    User(USER_ID, "Sandbox Owner", "owner@sandbox.example", is_admin=True),
    User(MANAGER_USER_ID, "Sales Manager", "manager@sandbox.example", is_admin=False),
)


@dataclass(frozen=True, slots=True)
class FieldEnum:
    id: int
    value: str
    sort: int


@dataclass(frozen=True, slots=True)
class CustomFieldDefinition:
    id: int
    entity_type: EntityType
    name: str
    type: str  # Kommo's type names: text, numeric, checkbox, select, multitext, date, url…
    code: str | None = None
    sort: int = 500
    enums: tuple[FieldEnum, ...] = ()
    is_predefined: bool = False

    def enum(self, enum_id: int | None = None, code: str | None = None) -> FieldEnum | None:
        return next(
            (e for e in self.enums if e.id == enum_id or (code is not None and e.value == code)),
            None,
        )


def _kinds(first_id: int, *codes: str) -> tuple[FieldEnum, ...]:
    return tuple(FieldEnum(first_id + n, code, (n + 1) * 2) for n, code in enumerate(codes))


CUSTOM_FIELDS = (
    CustomFieldDefinition(LEAD_BUDGET_FIELD_ID, "leads", "Budget", "numeric", sort=510),
    CustomFieldDefinition(
        LEAD_SOURCE_FIELD_ID,
        "leads",
        "Lead source",
        "select",
        sort=520,
        enums=(
            FieldEnum(LEAD_SOURCE_WEBSITE_ENUM_ID, "Website", 1),
            FieldEnum(LEAD_SOURCE_REFERRAL_ENUM_ID, "Referral", 2),
            FieldEnum(LEAD_SOURCE_ADS_ENUM_ID, "Ads", 3),
        ),
    ),
    CustomFieldDefinition(LEAD_COMMENT_FIELD_ID, "leads", "Comment", "textarea", sort=530),
    CustomFieldDefinition(LEAD_QUALIFIED_FIELD_ID, "leads", "Qualified", "checkbox", sort=540),
    CustomFieldDefinition(
        LEAD_UTM_SOURCE_FIELD_ID,
        "leads",
        "utm_source",
        "tracking_data",
        code="UTM_SOURCE",
        sort=550,
    ),
    CustomFieldDefinition(
        CONTACT_PHONE_FIELD_ID,
        "contacts",
        "Phone",
        "multitext",
        code="PHONE",
        sort=4,
        enums=_kinds(8_200_001, "WORK", "WORKDD", "MOB", "FAX", "HOME", "OTHER"),
        is_predefined=True,
    ),
    CustomFieldDefinition(
        CONTACT_EMAIL_FIELD_ID,
        "contacts",
        "Email",
        "multitext",
        code="EMAIL",
        sort=6,
        enums=_kinds(8_200_011, "WORK", "PRIV", "OTHER"),
        is_predefined=True,
    ),
    CustomFieldDefinition(
        CONTACT_POSITION_FIELD_ID,
        "contacts",
        "Position",
        "text",
        code="POSITION",
        sort=2,
        is_predefined=True,
    ),
    CustomFieldDefinition(
        COMPANY_PHONE_FIELD_ID,
        "companies",
        "Phone",
        "multitext",
        code="PHONE",
        sort=4,
        enums=_kinds(8_200_021, "WORK", "WORKDD", "MOB", "FAX", "HOME", "OTHER"),
        is_predefined=True,
    ),
    CustomFieldDefinition(
        COMPANY_WEB_FIELD_ID, "companies", "Web", "url", code="WEB", sort=8, is_predefined=True
    ),
)


# --- records ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldValue:
    value: str | int | float | bool | None = None
    enum_id: int | None = None
    enum_code: str | None = None


@dataclass(frozen=True, slots=True)
class FieldValues:
    """A custom field's values on a record (already checked against its definition)."""

    field_id: int
    values: tuple[FieldValue, ...]


@dataclass(frozen=True, slots=True)
class Lead:
    id: int
    name: str
    price: int
    pipeline_id: int
    status_id: int
    created_at: int
    updated_at: int
    responsible_user_id: int = USER_ID
    created_by: int = USER_ID
    updated_by: int = USER_ID
    closed_at: int | None = None
    loss_reason_id: int | None = None
    custom_fields: tuple[FieldValues, ...] = ()
    tag_ids: tuple[int, ...] = ()
    contact_ids: tuple[int, ...] = ()  # the first is the main contact
    company_id: int | None = None

    @property
    def is_open(self) -> bool:
        return self.status_id not in CLOSED_STATUS_IDS


@dataclass(frozen=True, slots=True)
class Contact:
    id: int
    name: str
    first_name: str
    last_name: str
    created_at: int
    updated_at: int
    responsible_user_id: int = USER_ID
    created_by: int = USER_ID
    updated_by: int = USER_ID
    custom_fields: tuple[FieldValues, ...] = ()
    tag_ids: tuple[int, ...] = ()
    company_id: int | None = None


@dataclass(frozen=True, slots=True)
class Company:
    id: int
    name: str
    created_at: int
    updated_at: int
    responsible_user_id: int = USER_ID
    created_by: int = USER_ID
    updated_by: int = USER_ID
    custom_fields: tuple[FieldValues, ...] = ()
    tag_ids: tuple[int, ...] = ()


Record = Lead | Contact | Company


@dataclass(frozen=True, slots=True)
class Note:
    id: int
    entity_type: EntityType
    entity_id: int
    note_type: str
    params: dict[str, Any]
    created_at: int
    created_by: int = USER_ID


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    text: str
    complete_till: int
    task_type_id: int
    created_at: int
    updated_at: int
    responsible_user_id: int = USER_ID
    entity_type: EntityType | None = None
    entity_id: int | None = None
    is_completed: bool = False
    result_text: str | None = None
    duration: int = 0
    created_by: int = USER_ID
    updated_by: int = USER_ID


@dataclass(frozen=True, slots=True)
class Call:
    id: int
    direction: Literal["inbound", "outbound"]
    duration: int
    source: str
    phone: str
    entity_type: EntityType
    entity_id: int
    note_id: int
    created_at: int
    uniq: str | None = None
    link: str | None = None
    call_status: int | None = None
    call_result: str | None = None
    responsible_user_id: int = USER_ID
    created_by: int = USER_ID


@dataclass(frozen=True, slots=True)
class Tag:
    id: int
    entity_type: EntityType
    name: str
    color: str | None = None


@dataclass(frozen=True, slots=True)
class Event:
    id: str
    type: str
    entity_type: str  # singular: lead, contact, company, task
    entity_id: int
    created_at: int
    created_by: int = USER_ID
    value_before: tuple[dict[str, Any], ...] = ()
    value_after: tuple[dict[str, Any], ...] = ()


@dataclass(frozen=True, slots=True)
class Webhook:
    id: int
    destination: str
    settings: tuple[str, ...]
    sort: int
    created_at: int
    updated_at: int
    disabled: bool = False
    created_by: int = USER_ID


@dataclass(frozen=True, slots=True)
class Talk:
    """A lead's conversation in the sandbox's chat channel: Kommo's talk, in a chat of its own."""

    id: int
    chat_id: str  # Kommo's id of the chat; Chats API replies name it as their conversation
    lead_id: int
    contact_id: int | None
    customer_id: str  # the customer's id in the Chats API: the author of incoming messages
    customer_name: str
    created_at: int
    updated_at: int


@dataclass(frozen=True, slots=True)
class Message:
    """One message in a lead's talk, with what Kommo's message webhook tells of it."""

    id: str
    talk_id: int
    chat_id: str
    lead_id: int
    contact_id: int | None
    direction: Literal["incoming", "outgoing"]  # from the customer, or from a manager
    text: str
    author_id: str  # the customer's Chats API id, or the manager's user id
    author_name: str
    created_at: int


@dataclass(frozen=True, slots=True)
class SalesbotRun:
    """The Salesbot on a lead: it called its widget with the customer's message and waits for
    the answer at /api/v4/salesbot/{bot_id}/continue/{continue_id}."""

    bot_id: int
    continue_id: int
    widget_url: str
    message: Message
    created_at: int


class SandboxRequest(NamedTuple):
    method: str
    path: str
    status: int
    at: float  # time.monotonic() when the response started


ChangeListener = Callable[[str, str, object], None]
AddedRecord = TypeVar("AddedRecord", bound=Record)
UpdatedRecord = TypeVar("UpdatedRecord", bound=Lead | Contact)


@dataclass(slots=True)
class _Account:
    leads: dict[int, Lead] = field(default_factory=dict)
    contacts: dict[int, Contact] = field(default_factory=dict)
    companies: dict[int, Company] = field(default_factory=dict)
    notes: dict[int, Note] = field(default_factory=dict)
    tasks: dict[int, Task] = field(default_factory=dict)
    calls: dict[int, Call] = field(default_factory=dict)
    tags: dict[int, Tag] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    webhooks: dict[int, Webhook] = field(default_factory=dict)
    talks: dict[int, Talk] = field(default_factory=dict)  # by lead id: one talk per lead
    messages: list[Message] = field(default_factory=list)
    salesbot_runs: list[SalesbotRun] = field(default_factory=list)


class SandboxStore:
    """One Kommo account in memory.

    Every method is synchronous, so inside the sandbox's event loop each runs whole; the lock
    is for the other threads that tests and the demo run alongside the server.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        # Ids never repeat, even across resets, as in Kommo: a stale id must not reach a new
        # record.
        self._ids = itertools.count(2_000)
        self._event_ids = itertools.count(1)
        self._listeners: list[ChangeListener] = []
        self._requests: deque[SandboxRequest] = deque(maxlen=REQUEST_LOG_SIZE)
        self._account = _Account()
        self.gateway_timeout_above: int | None = None
        self.salesbot_widget_url: str | None = None
        self.created_at = self._now()
        self.reset()

    def _now(self) -> int:
        return int(self._clock())

    # --- seeding and switches ------------------------------------------------------------

    def reset(self) -> None:
        """Back to the seeded account: the demo company, contact and lead, nothing else.

        The request log and the switches are cleared too; listeners stay subscribed.
        """
        now = self._now()
        phone = FieldValues(
            CONTACT_PHONE_FIELD_ID, (FieldValue(DEMO_CONTACT_PHONE, 8_200_001, "WORK"),)
        )
        email = FieldValues(
            CONTACT_EMAIL_FIELD_ID, (FieldValue(DEMO_CONTACT_EMAIL, 8_200_011, "WORK"),)
        )
        company = Company(DEMO_COMPANY_ID, "Demo Company", now, now)
        contact = Contact(
            DEMO_CONTACT_ID,
            "Demo Contact",
            "Demo",
            "Contact",
            now,
            now,
            custom_fields=(phone, email),
            company_id=DEMO_COMPANY_ID,
        )
        lead = Lead(
            DEMO_LEAD_ID,
            "Demo lead",
            0,
            PIPELINE_ID,
            INITIAL_CONTACT_STATUS_ID,
            now,
            now,
            contact_ids=(DEMO_CONTACT_ID,),
            company_id=DEMO_COMPANY_ID,
        )
        with self._lock:
            self._account = _Account(
                leads={lead.id: lead},
                contacts={contact.id: contact},
                companies={company.id: company},
            )
            self._requests.clear()
            self.gateway_timeout_above = None
            self.salesbot_widget_url = None

    def subscribe(self, listener: ChangeListener) -> Callable[[], None]:
        """Call `listener(entity, action, record)` after every change; returns an unsubscribe."""
        with self._lock:
            self._listeners.append(listener)

        def unsubscribe() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return unsubscribe

    def _notify(self, changes: Iterable[tuple[str, str, object]]) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for entity, action, record in changes:
            for listener in listeners:
                try:
                    listener(entity, action, record)
                except Exception:  # a listener's bug must not undo or fail the API call
                    log.exception("sandbox_listener_failed", entity=entity, action=action)

    def record_request(self, method: str, path: str, status: int) -> None:
        self._requests.append(SandboxRequest(method, path, status, time.monotonic()))

    @property
    def requests(self) -> list[SandboxRequest]:
        """The API requests answered so far, oldest first (the last 10 000)."""
        with self._lock:
            return list(self._requests)

    def batch_times_out(self, items: int) -> bool:
        return self.gateway_timeout_above is not None and items > self.gateway_timeout_above

    # --- the account's setup -----------------------------------------------------------------

    @staticmethod
    def pipelines() -> tuple[Pipeline, ...]:
        return PIPELINES

    @staticmethod
    def pipeline(pipeline_id: int) -> Pipeline | None:
        return next((p for p in PIPELINES if p.id == pipeline_id), None)

    @staticmethod
    def main_pipeline() -> Pipeline:
        return next(p for p in PIPELINES if p.is_main)

    @staticmethod
    def users() -> tuple[User, ...]:
        return USERS

    @staticmethod
    def user(user_id: int) -> User | None:
        return next((u for u in USERS if u.id == user_id), None)

    @staticmethod
    def custom_fields(entity_type: EntityType) -> list[CustomFieldDefinition]:
        return [f for f in CUSTOM_FIELDS if f.entity_type == entity_type]

    @staticmethod
    def custom_field(
        entity_type: EntityType, field_id: int | None = None, code: str | None = None
    ) -> CustomFieldDefinition | None:
        return next(
            (
                f
                for f in CUSTOM_FIELDS
                if f.entity_type == entity_type
                and (f.id == field_id or (code is not None and f.code == code))
            ),
            None,
        )

    # --- reading records ---------------------------------------------------------------------

    def get_lead(self, lead_id: int) -> Lead | None:
        return self._account.leads.get(lead_id)

    def get_contact(self, contact_id: int) -> Contact | None:
        return self._account.contacts.get(contact_id)

    def get_company(self, company_id: int) -> Company | None:
        return self._account.companies.get(company_id)

    def get(self, entity_type: EntityType, entity_id: int) -> Record | None:
        records: dict[int, Any] = self._records(entity_type)
        found: Record | None = records.get(entity_id)
        return found

    def leads(self) -> list[Lead]:
        return list(self._account.leads.values())

    def contacts(self) -> list[Contact]:
        return list(self._account.contacts.values())

    def companies(self) -> list[Company]:
        return list(self._account.companies.values())

    def exists(self, entity_type: EntityType, entity_id: int) -> bool:
        return entity_id in self._records(entity_type)

    def leads_of_contact(self, contact_id: int) -> list[Lead]:
        return [lead for lead in self.leads() if contact_id in lead.contact_ids]

    def _records(self, entity_type: EntityType) -> dict[int, Any]:
        if entity_type == "leads":
            return self._account.leads
        if entity_type == "contacts":
            return self._account.contacts
        return self._account.companies

    def notes(
        self, entity_type: EntityType | None = None, entity_id: int | None = None
    ) -> list[Note]:
        """Notes by ascending id (the order they were added), optionally of one entity only."""
        return [
            note
            for note in list(self._account.notes.values())
            if (entity_type is None or note.entity_type == entity_type)
            and (entity_id is None or note.entity_id == entity_id)
        ]

    def tasks(self) -> list[Task]:
        return list(self._account.tasks.values())

    def get_task(self, task_id: int) -> Task | None:
        return self._account.tasks.get(task_id)

    def calls(self) -> list[Call]:
        return list(self._account.calls.values())

    def tags(self, entity_type: EntityType) -> list[Tag]:
        return [tag for tag in self._account.tags.values() if tag.entity_type == entity_type]

    def tag(self, entity_type: EntityType, tag_id: int) -> Tag | None:
        tag = self._account.tags.get(tag_id)
        return tag if tag is not None and tag.entity_type == entity_type else None

    def events(self) -> list[Event]:
        """The account's events, oldest first."""
        return list(self._account.events)

    def webhooks(self) -> list[Webhook]:
        return list(self._account.webhooks.values())

    def webhooks_for(self, setting: str) -> list[Webhook]:
        """The enabled subscriptions to one event, e.g. "add_lead" or "status_lead"."""
        return [w for w in self.webhooks() if not w.disabled and setting in w.settings]

    def latest_event(self, type_: str, entity_id: int) -> Event | None:
        """The newest event of this type about this entity, e.g. its last stage change."""
        return next(
            (
                event
                for event in reversed(self._account.events)
                if event.type == type_ and event.entity_id == entity_id
            ),
            None,
        )

    def talk_of(self, lead_id: int) -> Talk | None:
        return self._account.talks.get(lead_id)

    def messages_of(self, lead_id: int) -> list[Message]:
        """The lead's chat messages, oldest first."""
        return [message for message in self._account.messages if message.lead_id == lead_id]

    def salesbot_runs_of(self, lead_id: int) -> list[SalesbotRun]:
        return [run for run in self._account.salesbot_runs if run.message.lead_id == lead_id]

    def find_by_phone(self, phone: str) -> Contact | Company | None:
        """The contact (else company) with this phone; Kommo compares the last 10 digits."""
        wanted = _last_digits(phone)
        if not wanted:
            return None
        candidates: list[Contact | Company] = [*self.contacts(), *self.companies()]
        for record in candidates:
            for values in record.custom_fields:
                definition = self.custom_field(_entity_type_of(record), values.field_id)
                if definition is None or definition.code != "PHONE":
                    continue
                if any(_last_digits(str(v.value)) == wanted for v in values.values):
                    return record
        return None

    # --- changing records --------------------------------------------------------------------

    def add_lead(
        self,
        *,
        name: str = "",
        price: int = 0,
        pipeline_id: int = PIPELINE_ID,
        status_id: int = INCOMING_STATUS_ID,
        responsible_user_id: int = USER_ID,
        created_by: int = USER_ID,
        custom_fields: tuple[FieldValues, ...] = (),
        tag_ids: tuple[int, ...] = (),
        contact_ids: tuple[int, ...] = (),
        company_id: int | None = None,
    ) -> Lead:
        def build(lead_id: int, now: int) -> Lead:
            return Lead(
                lead_id,
                # Kommo names an unnamed lead after its id.
                name or f"Lead #{lead_id}",
                price,
                pipeline_id,
                status_id,
                now,
                now,
                responsible_user_id=responsible_user_id,
                created_by=created_by,
                updated_by=created_by,
                closed_at=now if status_id in CLOSED_STATUS_IDS else None,
                custom_fields=custom_fields,
                tag_ids=tag_ids,
                contact_ids=contact_ids,
                company_id=company_id,
            )

        return self._add("leads", build)

    def update_lead(self, lead_id: int, *, updated_by: int = USER_ID, **changes: Any) -> Lead:
        """Change a lead's fields (name, price, pipeline_id, status_id, responsible_user_id,
        loss_reason_id, custom_fields, tag_ids); KeyError if there is no such lead."""
        return self._update("leads", lead_id, changes, updated_by, self._settle_lead)

    def _settle_lead(
        self, before: Lead, after: Lead, changes: dict[str, Any], now: int
    ) -> tuple[Lead, list[str]]:
        """A lead's own rules: closing follows the stage; a new stage is a "status" change."""
        if after.status_id != before.status_id:
            closing = after.status_id in CLOSED_STATUS_IDS
            after = replace(after, closed_at=now if closing else None)
        if (after.pipeline_id, after.status_id) == (before.pipeline_id, before.status_id):
            return after, []
        self._event(
            "lead_status_changed",
            "leads",
            after.id,
            before=[_status_value(before)],
            after=[_status_value(after)],
        )
        return after, ["status"]

    def add_contact(
        self,
        *,
        name: str = "",
        first_name: str = "",
        last_name: str = "",
        responsible_user_id: int = USER_ID,
        created_by: int = USER_ID,
        custom_fields: tuple[FieldValues, ...] = (),
        tag_ids: tuple[int, ...] = (),
        company_id: int | None = None,
    ) -> Contact:
        def build(contact_id: int, now: int) -> Contact:
            return Contact(
                contact_id,
                # Kommo shows a contact without a name by its first and last names.
                name or f"{first_name} {last_name}".strip(),
                first_name,
                last_name,
                now,
                now,
                responsible_user_id=responsible_user_id,
                created_by=created_by,
                updated_by=created_by,
                custom_fields=custom_fields,
                tag_ids=tag_ids,
                company_id=company_id,
            )

        return self._add("contacts", build)

    def update_contact(
        self, contact_id: int, *, updated_by: int = USER_ID, **changes: Any
    ) -> Contact:
        """Change a contact's fields; KeyError if there is no such contact."""
        return self._update("contacts", contact_id, changes, updated_by, _settle_contact)

    def add_company(
        self,
        *,
        name: str,
        responsible_user_id: int = USER_ID,
        created_by: int = USER_ID,
        custom_fields: tuple[FieldValues, ...] = (),
        tag_ids: tuple[int, ...] = (),
    ) -> Company:
        def build(company_id: int, now: int) -> Company:
            return Company(
                company_id,
                name,
                now,
                now,
                responsible_user_id=responsible_user_id,
                created_by=created_by,
                updated_by=created_by,
                custom_fields=custom_fields,
                tag_ids=tag_ids,
            )

        return self._add("companies", build)

    def _add(
        self, entity_type: EntityType, build: Callable[[int, int], AddedRecord]
    ) -> AddedRecord:
        """Keep the record `build(new_id, now)` makes, with its "…_added" event and hook."""
        now = self._now()
        with self._lock:
            record = build(next(self._ids), now)
            self._records(entity_type)[record.id] = record
            # Kommo's lead_added event says where the lead landed; the others carry nothing.
            after = [_status_value(record)] if isinstance(record, Lead) else None
            self._event(f"{EVENT_ENTITY[entity_type]}_added", entity_type, record.id, after=after)
        self._notify([(entity_type, "add", record)])
        return record

    def _update(
        self,
        entity_type: Literal["leads", "contacts"],
        record_id: int,
        changes: dict[str, Any],
        updated_by: int,
        settle: Callable[
            [UpdatedRecord, UpdatedRecord, dict[str, Any], int], tuple[UpdatedRecord, list[str]]
        ],
    ) -> UpdatedRecord:
        """What every update of a lead or contact does; `settle(before, after, changes, now)`
        applies the entity's own rules and returns the record to keep and its extra hooks."""
        now = self._now()
        with self._lock:
            records = self._records(entity_type)
            before: UpdatedRecord = records[record_id]
            changed = replace(before, **changes, updated_at=now, updated_by=updated_by)
            after, own_actions = settle(before, changed, changes, now)
            records[record_id] = after
            actions = ["update", *own_actions]
            if after.responsible_user_id != before.responsible_user_id:
                self._responsible_event(entity_type, before.responsible_user_id, after)
                actions.append("responsible")
            self._common_change_events(entity_type, before, after)
        self._notify((entity_type, action, after) for action in actions)
        return after

    def delete(self, entity_type: EntityType, entity_id: int) -> Record | None:
        """Remove a lead, contact or company (Kommo API v4 cannot; a person in Kommo can)."""
        with self._lock:
            record: Record | None = self._records(entity_type).pop(entity_id, None)
            if record is not None:
                self._event(f"{EVENT_ENTITY[entity_type]}_deleted", entity_type, entity_id)
        if record is not None:
            self._notify([(entity_type, "delete", record)])
        return record

    def add_note(
        self,
        entity_type: EntityType,
        entity_id: int,
        note_type: str,
        params: dict[str, Any],
        *,
        created_by: int = USER_ID,
    ) -> Note:
        with self._lock:
            note = Note(
                next(self._ids), entity_type, entity_id, note_type, params, self._now(), created_by
            )
            self._account.notes[note.id] = note
            self._note_event(note)
        self._notify([(entity_type, "note", note)])
        return note

    def add_task(
        self,
        *,
        text: str,
        complete_till: int,
        task_type_id: int = FOLLOW_UP_TASK_TYPE_ID,
        responsible_user_id: int = USER_ID,
        entity_type: EntityType | None = None,
        entity_id: int | None = None,
        duration: int = 0,
        is_completed: bool = False,
        result_text: str | None = None,
        created_by: int = USER_ID,
    ) -> Task:
        now = self._now()
        with self._lock:
            task = Task(
                next(self._ids),
                text,
                complete_till,
                task_type_id,
                now,
                now,
                responsible_user_id=responsible_user_id,
                entity_type=entity_type,
                entity_id=entity_id,
                is_completed=is_completed,
                result_text=result_text,
                duration=duration,
                created_by=created_by,
                updated_by=created_by,
            )
            self._account.tasks[task.id] = task
            self._event(
                "task_added",
                "tasks",
                task.id,
                after=[{"task_deadline": {"timestamp": complete_till}}],
            )
        self._notify([("tasks", "add", task)])
        return task

    def update_task(self, task_id: int, *, updated_by: int = USER_ID, **changes: Any) -> Task:
        """Change a task's fields (text, complete_till, task_type_id, responsible_user_id,
        is_completed, result_text, duration); KeyError if there is no such task."""
        with self._lock:
            before = self._account.tasks[task_id]
            after = replace(before, **changes, updated_at=self._now(), updated_by=updated_by)
            self._account.tasks[task_id] = after
            if after.is_completed and not before.is_completed:
                self._event("task_completed", "tasks", task_id)
            if after.result_text and after.result_text != before.result_text:
                self._event(
                    "task_result_added", "tasks", task_id, after=[{"text": after.result_text}]
                )
            if after.complete_till != before.complete_till:
                self._event(
                    "task_deadline_changed",
                    "tasks",
                    task_id,
                    before=[{"task_deadline": {"timestamp": before.complete_till}}],
                    after=[{"task_deadline": {"timestamp": after.complete_till}}],
                )
        self._notify([("tasks", "update", after)])
        return after

    def add_call(
        self,
        *,
        direction: Literal["inbound", "outbound"],
        duration: int,
        source: str,
        phone: str,
        entity_type: EntityType,
        entity_id: int,
        uniq: str | None = None,
        link: str | None = None,
        call_status: int | None = None,
        call_result: str | None = None,
        responsible_user_id: int = USER_ID,
        created_by: int = USER_ID,
    ) -> Call:
        """Log a call on an entity as a call_in/call_out note, as Kommo shows calls."""
        params = {
            "uniq": uniq,
            "duration": duration,
            "source": source,
            "link": link,
            "phone": phone,
            "call_status": call_status,
            "call_result": call_result,
        }
        note_type = "call_in" if direction == "inbound" else "call_out"
        note = self.add_note(
            entity_type,
            entity_id,
            note_type,
            {k: v for k, v in params.items() if v is not None},
            created_by=created_by,
        )
        with self._lock:
            call = Call(
                next(self._ids),
                direction,
                duration,
                source,
                phone,
                entity_type,
                entity_id,
                note.id,
                note.created_at,
                uniq=uniq,
                link=link,
                call_status=call_status,
                call_result=call_result,
                responsible_user_id=responsible_user_id,
                created_by=created_by,
            )
            self._account.calls[call.id] = call
        return call

    def add_tag(self, entity_type: EntityType, name: str, color: str | None = None) -> Tag:
        """The entity type's tag with this name (case-insensitive), created when new."""
        with self._lock:
            existing = next(
                (t for t in self.tags(entity_type) if t.name.casefold() == name.casefold()), None
            )
            if existing is not None:
                return existing
            tag = Tag(next(self._ids), entity_type, name, color)
            self._account.tags[tag.id] = tag
        return tag

    def subscribe_webhook(
        self, destination: str, settings: tuple[str, ...], sort: int = 1
    ) -> Webhook:
        """Add a subscription, or replace the settings of the destination's existing one."""
        now = self._now()
        with self._lock:
            existing = next((w for w in self.webhooks() if w.destination == destination), None)
            if existing is not None:
                webhook = replace(
                    existing, settings=settings, sort=sort, updated_at=now, disabled=False
                )
            else:
                webhook = Webhook(next(self._ids), destination, settings, sort, now, now)
            self._account.webhooks[webhook.id] = webhook
        return webhook

    def unsubscribe_webhook(self, destination: str) -> bool:
        with self._lock:
            found = [w.id for w in self.webhooks() if w.destination == destination]
            for webhook_id in found:
                del self._account.webhooks[webhook_id]
        return bool(found)

    def disable_webhook(self, webhook_id: int) -> None:
        """What Kommo does to a webhook after 100 failed deliveries in 2 hours."""
        with self._lock:
            webhook = self._account.webhooks[webhook_id]
            self._account.webhooks[webhook_id] = replace(webhook, disabled=True)

    # --- chats ------------------------------------------------------------------------------

    def add_incoming_message(self, lead_id: int, text: str) -> Message:
        """The lead's customer writes in the chat; KeyError if there is no such lead.

        Hooks: the lead's talk ("talks", "add" on the first message, else "update"), the
        message ("messages", "add"), and, while a Salesbot widget is set, the bot's call to it
        ("salesbot", "widget_request", the `SalesbotRun`).
        """
        with self._lock:
            talk, talk_action = self._touch_talk(lead_id)
            message = self._add_message(
                talk, "incoming", text, talk.customer_id, talk.customer_name
            )
            changes: list[tuple[str, str, object]] = [
                ("talks", talk_action, talk),
                ("messages", "add", message),
            ]
            if self.salesbot_widget_url is not None:
                run = SalesbotRun(
                    SALESBOT_ID, next(self._ids), self.salesbot_widget_url, message, self._now()
                )
                self._account.salesbot_runs.append(run)
                changes.append(("salesbot", "widget_request", run))
        self._notify(changes)
        return message

    def add_outgoing_message(
        self, lead_id: int, text: str, user_id: int = MANAGER_USER_ID
    ) -> Message:
        """A manager writes to the lead's customer; KeyError if there is no such lead or user.

        Hooks: the lead's talk, as for an incoming message, and the message.
        """
        user = self.user(user_id)
        if user is None:
            raise KeyError(user_id)
        with self._lock:
            talk, talk_action = self._touch_talk(lead_id)
            message = self._add_message(talk, "outgoing", text, str(user.id), user.name)
        self._notify([("talks", talk_action, talk), ("messages", "add", message)])
        return message

    def _touch_talk(self, lead_id: int) -> tuple[Talk, str]:
        """The lead's talk, opened ("add") by its first message, else updated ("update")."""
        lead = self._account.leads[lead_id]
        now = self._now()
        talk = self._account.talks.get(lead_id)
        if talk is not None:
            talk = replace(talk, updated_at=now)
            self._account.talks[lead_id] = talk
            return talk, "update"
        contact = self.get_contact(lead.contact_ids[0]) if lead.contact_ids else None
        talk = Talk(
            next(self._ids),
            chat_id=str(uuid.uuid4()),
            lead_id=lead_id,
            contact_id=contact.id if contact else None,
            customer_id=str(uuid.uuid4()),
            customer_name=contact.name if contact else lead.name,
            created_at=now,
            updated_at=now,
        )
        self._account.talks[lead_id] = talk
        return talk, "add"

    def _add_message(
        self,
        talk: Talk,
        direction: Literal["incoming", "outgoing"],
        text: str,
        author_id: str,
        author_name: str,
    ) -> Message:
        message = Message(
            str(uuid.uuid4()),
            talk.id,
            talk.chat_id,
            talk.lead_id,
            talk.contact_id,
            direction,
            text,
            author_id,
            author_name,
            self._now(),
        )
        self._account.messages.append(message)
        self._event(
            f"{direction}_chat_message",
            "leads",
            talk.lead_id,
            after=[{"message": {"id": message.id, "origin": CHAT_ORIGIN}}],
            # Kommo credits a customer's message to no user (0), a manager's to the manager.
            created_by=0 if direction == "incoming" else int(author_id),
        )
        return message

    # --- the event feed ----------------------------------------------------------------------

    def _event(
        self,
        type_: str,
        entity_type: str,
        entity_id: int,
        *,
        before: list[dict[str, Any]] | None = None,
        after: list[dict[str, Any]] | None = None,
        created_by: int = USER_ID,
    ) -> None:
        # Kommo's event ids are 26 lowercase characters; a counter keeps them in order.
        event_id = format(next(self._event_ids), "026x")
        self._account.events.append(
            Event(
                event_id,
                type_,
                EVENT_ENTITY[entity_type],
                entity_id,
                self._now(),
                created_by,
                tuple(before or ()),
                tuple(after or ()),
            )
        )

    def _responsible_event(
        self, entity_type: EntityType, before: int, record: Lead | Contact
    ) -> None:
        self._event(
            "entity_responsible_changed",
            entity_type,
            record.id,
            before=[{"responsible_user": {"id": before}}],
            after=[{"responsible_user": {"id": record.responsible_user_id}}],
        )

    def _common_change_events(
        self, entity_type: EntityType, before: Lead | Contact, after: Lead | Contact
    ) -> None:
        if isinstance(before, Lead) and isinstance(after, Lead) and after.price != before.price:
            self._event(
                "sale_field_changed",
                entity_type,
                after.id,
                before=[{"sale_field_value": {"sale": before.price}}],
                after=[{"sale_field_value": {"sale": after.price}}],
            )
        if after.name != before.name:
            self._event(
                "name_field_changed",
                entity_type,
                after.id,
                before=[{"name_field_value": {"name": before.name}}],
                after=[{"name_field_value": {"name": after.name}}],
            )
        old_fields = {values.field_id: values for values in before.custom_fields}
        for values in after.custom_fields:
            if old_fields.get(values.field_id) != values:
                self._event(
                    f"custom_field_{values.field_id}_value_changed",
                    entity_type,
                    after.id,
                    after=[_field_event_value(values)],
                )
        for tag_id in set(after.tag_ids) - set(before.tag_ids):
            tag = self._account.tags.get(tag_id)
            self._event(
                "entity_tag_added",
                entity_type,
                after.id,
                after=[{"tag": {"name": tag.name if tag else ""}}],
            )
        for tag_id in set(before.tag_ids) - set(after.tag_ids):
            tag = self._account.tags.get(tag_id)
            self._event(
                "entity_tag_deleted",
                entity_type,
                after.id,
                before=[{"tag": {"name": tag.name if tag else ""}}],
            )

    def _note_event(self, note: Note) -> None:
        types = {
            "common": "common_note_added",
            "service_message": "service_note_added",
            "call_in": "incoming_call",
            "call_out": "outgoing_call",
        }
        self._event(
            types.get(note.note_type, f"{note.note_type}_note_added"),
            note.entity_type,
            note.entity_id,
            after=[{"note": {"id": note.id}}],
            created_by=note.created_by,
        )


def _settle_contact(
    before: Contact, after: Contact, changes: dict[str, Any], now: int
) -> tuple[Contact, list[str]]:
    """A contact renamed by its first or last name alone is shown by the new names."""
    if {"first_name", "last_name"} & changes.keys() and "name" not in changes:
        after = replace(after, name=f"{after.first_name} {after.last_name}".strip() or after.name)
    return after, []


def _status_value(lead: Lead) -> dict[str, Any]:
    return {"lead_status": {"id": lead.status_id, "pipeline_id": lead.pipeline_id}}


def _field_event_value(values: FieldValues) -> dict[str, Any]:
    first = values.values[0] if values.values else FieldValue()
    return {
        "custom_field_value": {
            "field_id": values.field_id,
            "enum_id": first.enum_id,
            "text": "" if first.value is None else str(first.value),
        }
    }


def _entity_type_of(record: Record) -> EntityType:
    if isinstance(record, Lead):
        return "leads"
    return "contacts" if isinstance(record, Contact) else "companies"


def _last_digits(phone: str) -> str:
    return "".join(ch for ch in phone if ch.isdigit())[-10:]
