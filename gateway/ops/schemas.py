"""Requests and answers of the ops API: searches, ticket views, deliveries, replay, quarantine, reload and audit."""

from __future__ import annotations

import re
from datetime import date, datetime, time
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, model_validator

from contracts.codesets import Status
from contracts.delivery import AttemptReceipt, DeliveryReceipt, DeliveryState
from contracts.ticket import JurisdictionDecision
from gateway.store.base import AuditQuery, DeliveryFilter, TicketQuery
from gateway.tickets.deadlines import CHINA_TZ

DeadlineFilter = Literal["overdue", "due_soon", "at_risk"]


_TIME_FORMAT = "an ISO 8601 day or time, e.g. 2024-06-11 or 2024-06-11T09:30:00+08:00"


def _china_time(value: Any) -> Any:
    """A day (2024-06-11) is its midnight in China; a time without a zone is China time. Nothing else is a time
    here: not unix seconds (pydantic would read "0.5" as 1970), which the OpenAPI document does not offer."""
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=CHINA_TZ)
    if not isinstance(value, str):
        raise ValueError(f"expected {_TIME_FORMAT}")
    text = value.strip()
    try:
        if len(text) == 10:
            return datetime.combine(date.fromisoformat(text), time(), CHINA_TZ)
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected {_TIME_FORMAT}, got {text[:40]!r}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=CHINA_TZ)


OpsTime = Annotated[AwareDatetime, BeforeValidator(_china_time), WithJsonSchema(
    {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string", "format": "date"}],
     "description": f"{_TIME_FORMAT}; a day is its midnight in China, a time without a zone is China time"})]
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")  # the extended form only, as the document's format "date" says


def _iso_day(value: Any) -> Any:
    """An ISO day (2024-06-11) and nothing else: not unix seconds, which pydantic would read as a day of 1970."""
    if isinstance(value, date):
        return value
    if isinstance(value, str) and _DAY.match(value.strip()):
        try:
            return date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ValueError(f"expected an ISO 8601 day, e.g. 2024-06-11, got {str(value)[:40]!r}")


OpsDay = Annotated[date, BeforeValidator(_iso_day), WithJsonSchema({"type": "string", "format": "date"})]
# An id or name in a query or body: 1–64 characters, none of them a control character, not all of them spaces.
_TEXT = r"^[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f][^\x00-\x1f\x7f]*$"
_CONTROL = re.compile("[\x00-\x1f\x7f]")


def _no_control_character(value: Any) -> Any:
    # Before the surrounding spaces are stripped ("\x0c" is one), as the pattern in the document reads the raw value.
    if isinstance(value, str) and _CONTROL.search(value):
        raise ValueError("a control character is not allowed here")
    return value


# (The validator after the Field: before it, pydantic leaves the pattern out of the JSON schema.)
Text64 = Annotated[str, Field(min_length=1, max_length=64, pattern=_TEXT), BeforeValidator(_no_control_character)]
Limit = Annotated[int, Field(ge=1, le=500)]


class _Request(BaseModel):
    # A window whose `since` is not before its `until` is empty, not an error: a rule across two parameters is
    # one the OpenAPI document cannot state, and the answer (nothing) is the true one.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TicketSearch(_Request):
    """Every given field must match; phone in any written form (matched by its keyed hash); newest first."""

    source_ticket_no: Text64 | None = None
    national_registration_no: Text64 | None = None
    complainant_phone: Annotated[str, Field(min_length=3, max_length=32)] | None = None
    respondent_uscc: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    respondent_name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    status: Status | None = None
    adapter_id: Text64 | None = None
    since: OpsTime | None = None
    until: OpsTime | None = None
    deadline: DeadlineFilter | None = None
    limit: Limit = 50

    def query(self, limit: int | None = None) -> TicketQuery:
        return TicketQuery(
            adapter_id=self.adapter_id, status=self.status.value if self.status else None,
            national_registration_no=self.national_registration_no, source_ticket_no=self.source_ticket_no,
            respondent_uscc=self.respondent_uscc.upper() if self.respondent_uscc else None,
            respondent_name=self.respondent_name, complainant_phone=self.complainant_phone,
            since=self.since, until=self.until, limit=limit or self.limit,
        )


class OnTimeSearch(BaseModel):
    """The days whose ended time limits count (China time, both inclusive); by default the last 30 up to today."""

    model_config = ConfigDict(extra="forbid")

    since: OpsDay | None = None
    until: OpsDay | None = None


class DeliverySearch(_Request):
    state: DeliveryState | None = None
    destination: Text64 | None = None
    error_class: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    ticket_id: Text64 | None = None
    since: OpsTime | None = None
    until: OpsTime | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100

    def filter(self) -> DeliveryFilter:
        return DeliveryFilter(state=self.state, destination=self.destination, error_class=self.error_class,
                              since=self.since, until=self.until, ticket_id=self.ticket_id, limit=self.limit)


class ReplayFilter(_Request):
    """Deliveries to replay: dead letters (back on their lane), or retrying ones (due now: "retry now" after a
    partner's fault is fixed); every given field must match."""

    state: Literal["dead", "retrying"] = "dead"
    destination: Text64 | None = None
    error_class: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    ticket_id: Text64 | None = None
    since: OpsTime | None = None
    until: OpsTime | None = None
    limit: Annotated[int, Field(ge=1, le=1000)] = 100

    def filter(self) -> DeliveryFilter:
        return DeliveryFilter(state=DeliveryState(self.state), destination=self.destination,
                              error_class=self.error_class,
                              since=self.since, until=self.until, ticket_id=self.ticket_id, limit=self.limit)


class ReplayRequest(_Request):
    """Replay dead (or retry now retrying) deliveries by id or by filter; a dry run says which would go, and changes
    nothing."""

    delivery_ids: Annotated[list[Text64], Field(min_length=1, max_length=1000)] | None = None
    filter: ReplayFilter | None = None
    dry_run: bool = False

    @model_validator(mode="after")
    def _ids_or_filter(self) -> ReplayRequest:
        if (self.delivery_ids is None) == (self.filter is None):
            raise ValueError("give delivery_ids or filter (one of them)")
        return self


class AlertSearch(_Request):
    state: Literal["firing", "all"] = "firing"  # all: firing and resolved, most recently updated first
    limit: Limit = 100


class AuditSearch(_Request):
    actor: Text64 | None = None
    action: Text64 | None = None
    ticket_id: Text64 | None = None
    since: OpsTime | None = None
    until: OpsTime | None = None
    limit: Limit = 100

    def query(self) -> AuditQuery:
        return AuditQuery(actor=self.actor, action=self.action, ticket_id=self.ticket_id, since=self.since,
                          until=self.until, limit=self.limit)


class EchoSearch(_Request):
    limit: Limit = 100


class QuarantineSearch(_Request):
    adapter_id: Text64 | None = None
    include_resolved: bool = False
    limit: Limit = 100


# -- answers ----------------------------------------------------------------------------------------------

class TicketSummary(BaseModel):
    """One line of a search result; personal fields as the asking role may see them."""

    ticket_id: str
    source_ticket_no: str
    national_registration_no: str | None
    adapter_id: str
    business_type: str
    urgency: str
    status: Status
    received_at: datetime
    title: str | None
    complainant_name: str | None
    complainant_phone: str | None
    respondent_name: str | None
    respondent_uscc: str | None
    handler_org_name: str | None
    deadline_risk: Literal["overdue", "due_soon"] | None
    due_on: date | None
    masked: bool


class DeliveryDetail(BaseModel):
    delivery: DeliveryReceipt
    attempts: list[AttemptReceipt]
    # A waiting delivery goes only after the ticket's earlier one to the same destination is delivered or dead:
    # that one's id, while it is still pending, retrying or in flight.
    waits_for: str | None = None


class TimelineEntry(BaseModel):
    at: datetime
    kind: str  # received, registered, stored, status, rejected_event, attempt, delivered, dead, audit, deadline,
    # version, urge, withdrawal (the sender's follow-ups)
    label: str  # Chinese, for the page
    detail: str | None = None
    tone: Literal["info", "ok", "warn", "bad"] = "info"


class AlertView(BaseModel):
    """One alert: a condition from firing to resolved; `owed` are channels not yet sent its latest change."""

    alert_id: str
    key: str
    rule: str
    subject: str
    severity: str
    state: Literal["firing", "resolved"]
    summary: str
    count: int
    peak: int
    started_at: datetime
    updated_at: datetime
    resolved_at: datetime | None
    notices: int
    details: list[str]
    owed: list[str]


class AuditView(BaseModel):
    entry_id: str | None
    at: datetime
    actor: str
    role: str
    action: str
    outcome: str
    ticket_ids: list[str]
    detail: dict[str, Any]


class EchoView(BaseModel):
    """The sender's echo of one ticket (事事有回音): the newest status the callbacks to its originating partner
    carry, the newest the partner actually received (a delivered callback), and since when it is behind."""

    destination: str  # the partner's callback lane
    latest_status: Status
    latest_sequence: int
    latest_at: datetime  # when the callback of the newest status was enqueued
    heard_status: Status | None  # None: the partner has heard no status of this ticket yet
    heard_sequence: int | None
    heard_at: datetime | None
    behind_since: datetime | None  # None: the partner has heard the newest status
    behind_seconds: float  # 0 when caught up
    overdue: bool  # behind for longer than echo.behind_after_seconds
    waiting: DeliveryReceipt | None = None  # the callback it waits for: its state, attempts and last error


class BehindTicket(BaseModel):
    """A ticket whose partner has not heard its latest status for longer than echo.behind_after_seconds."""

    ticket_id: str
    source_ticket_no: str | None
    adapter_id: str | None
    status: Status | None  # the national status, as the ticket stands
    echo: EchoView


class TicketDetail(BaseModel):
    ticket: dict[str, Any]
    masked: bool
    echo: EchoView | None = None  # None: no status callback was ever enqueued for it (or its partner has none)
    deadline_risk: Literal["overdue", "due_soon"] | None
    due_on: date | None
    deliveries: list[DeliveryDetail]
    timeline: list[TimelineEntry]
    audit: list[AuditView]


NotReplayedReason = Literal["delivered", "pending", "in_flight", "changed_meanwhile"]


class NotReplayed(BaseModel):
    """A delivery a replay named or matched but did not put back, and why: `reason` is the stable code, `message`
    says it in Chinese for the operator, `message_en` in English for logs."""

    delivery_id: str
    state: DeliveryState
    reason: NotReplayedReason
    message: str
    message_en: str


class ReplayResult(BaseModel):
    """What a replay did: `delivery_ids` went back on their lanes (dead ones) or are due now (retrying ones);
    `not_replayed` explains each other one it was asked for."""

    dry_run: bool
    delivery_ids: list[str]
    ticket_ids: list[str]
    count: int
    audit_id: str
    not_replayed: list[NotReplayed] = Field(default_factory=list)


class QuarantineView(BaseModel):
    quarantine_id: str
    adapter_id: str
    received_at: datetime
    content_type: str
    size: int
    errors: list[dict[str, Any]]  # of the latest time it came
    resolved_ticket_id: str | None
    returned: bool = False  # kept after a 退单 the partner was sent, not waiting for a fixed spec
    times_seen: int  # the same payload from the same adapter, while unresolved, is this one record
    last_seen_at: datetime


class RemapResult(BaseModel):
    """What a re-map did: `created`/`repeat` stored and sent on, `review` stored and held for an operator's
    jurisdiction decision, `returned` sent back to the partner (退单; the entry keeps the payload and is closed
    with the 退单's notes), `still_rejected` (the errors), `already_resolved` (by a ticket) or `already_returned`
    (a 退单 before: nothing is sent again)."""

    quarantine_id: str
    outcome: Literal["created", "repeat", "updated", "review", "still_rejected", "returned", "already_resolved",
                     "already_returned"]
    ticket_id: str | None = None
    errors: list[dict[str, Any]] = Field(default_factory=list)
    jurisdiction: JurisdictionDecision | None = None  # the jurisdiction screen's decision, when it ran
    audit_id: str | None = None


class ReloadResult(BaseModel):
    reloaded: list[str]
    adapters: list[str]
    restart_required: list[str]
    ops_users: int
    audit_id: str
