"""The canonical national ticket: every complaint, report and enquiry in the one national standard."""

from __future__ import annotations

import hashlib
from datetime import date
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from contracts.base import ContractModel, Money
from contracts.codesets import (
    BusinessType,
    Channel,
    CoordinateSystem,
    Gender,
    HandlerLevel,
    IdType,
    NotAcceptedReason,
    OriginHotline,
    Status,
    Urgency,
)
from contracts.codetables import default_code_tables
from contracts.followups import SenderUpdates
from contracts.identifiers import (
    IdentifierError,
    classify_enterprise_code,
    lookup_region,
    normalize_phone,
    normalize_resident_id,
    validate_uscc,
)
from contracts.status import AppliedEvent, CaseResult, DeadlineKind, FollowUp, RejectedEvent
from contracts.ulids import new_ulid

SCHEMA_VERSION: Literal["1.0"] = "1.0"
CONTENT_MAX = 4000


def _identifier(check: Any) -> AfterValidator:
    """Wrap an identifier normaliser so its reason becomes a pydantic error of its own kind."""

    def run(value: str) -> str:
        try:
            result: str = check(value)
        except IdentifierError as err:
            raise PydanticCustomError(f"invalid_{err.kind}", "{reason}", {"reason": err.reason}) from err
        return result

    return AfterValidator(run)


def _known_region(value: str) -> str:
    try:
        lookup_region(value)
    except IdentifierError as err:
        raise PydanticCustomError("invalid_region_code", "{reason}", {"reason": err.reason}) from err
    return value


def _in_code_table(table: str) -> AfterValidator:
    def run(value: str) -> str:
        # Any version counts: a ticket stored under a code since retired must stay readable.
        if not default_code_tables()[table].valid_during(value, date.min):
            raise PydanticCustomError(
                "unknown_code", "{value!r} is not a code of table {table}", {"value": value, "table": table}
            )
        return value

    return AfterValidator(run)


def _legacy_code(kind: str) -> AfterValidator:
    def run(value: str) -> str:
        try:
            code = classify_enterprise_code(value)
        except IdentifierError as err:
            raise PydanticCustomError(f"invalid_{kind}", "{reason}", {"reason": err.reason}) from err
        if code is None or code.kind != kind:
            found = "absent" if code is None else code.kind
            raise PydanticCustomError(
                f"invalid_{kind}", "expected a {kind}, found {found}", {"kind": kind, "found": found}
            )
        return code.value

    return AfterValidator(run)


Phone = Annotated[str, Field(max_length=32), _identifier(normalize_phone)]
Uscc = Annotated[str, _identifier(validate_uscc)]
RegionCode = Annotated[str, Field(pattern=r"^\d{6}$"), AfterValidator(_known_region)]
ShortText = Annotated[str, Field(min_length=1, max_length=200)]
Name = Annotated[str, Field(min_length=1, max_length=100)]
Address = Annotated[str, Field(min_length=1, max_length=300)]
TicketNo = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[0-9A-Za-z_\-./:]+$")]
SystemId = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_\-]*$")]


def idempotency_key_of(source_system: str, source_ticket_no: str, source_version: str) -> str:
    """The key a receiver dedupes on: one ticket version from one source system."""
    material = "\x1f".join((source_system, source_ticket_no, source_version))
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


class Source(ContractModel):
    """Where the ticket came from."""

    source_system: SystemId
    adapter_id: SystemId
    source_ticket_no: TicketNo
    source_version: Annotated[str, Field(min_length=1, max_length=32)] = "1"
    related_ticket_nos: list[TicketNo] = Field(default_factory=list, max_length=50)
    source_received_at: AwareDatetime
    source_deadline: AwareDatetime | None = None
    raw_payload_ref: Annotated[str, Field(max_length=200)] | None = None


class Classification(ContractModel):
    """What kind of matter, how it arrived and how urgent it is."""

    business_type: BusinessType
    channel: Channel
    origin_hotline: OriginHotline = OriginHotline.NONE
    urgency: Urgency = Urgency.ROUTINE


class Registration(ContractModel):
    """The registration of the matter: when, by whom, and what the caller said and asks for."""

    registered_at: AwareDatetime
    registering_org_code: Annotated[str, Field(max_length=64)] | None = None
    title: ShortText | None = None
    content: Annotated[str, Field(min_length=1, max_length=CONTENT_MAX)]
    request: Annotated[str, Field(min_length=1, max_length=2000)] | None = None
    keywords: list[Annotated[str, Field(min_length=1, max_length=50)]] = Field(default_factory=list, max_length=20)


class Agent(ContractModel):
    """Someone acting for the complainant (代理人)."""

    name: Name
    phone: Phone | None = None
    relation: Annotated[str, Field(max_length=50)] | None = None


class Complainant(ContractModel):
    """The complainant, reporter or enquirer. A reporter's identity is confidential by law (Art. 33)."""

    name: Name | None = None
    phone: Phone | None = None
    address: Address | None = None
    region_code: RegionCode | None = None
    gender: Gender | None = None
    id_type: IdType | None = None
    id_number: Annotated[str, Field(max_length=32)] | None = None
    anonymous: bool = False
    confidential: bool | None = None
    agent: Agent | None = None

    @field_validator("id_number")
    @classmethod
    def _resident_id_is_checked(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if info.data.get("id_type") in (IdType.RESIDENT_ID, None):
            try:
                return normalize_resident_id(value)
            except IdentifierError as err:
                raise PydanticCustomError("invalid_resident_id", "{reason}", {"reason": err.reason}) from err
        return value


class OnlinePlatform(ContractModel):
    """The e-commerce platform a respondent sells on; jurisdiction follows the platform's domicile."""

    name: Name
    shop_name: Annotated[str, Field(max_length=200)] | None = None
    url: Annotated[str, Field(max_length=500)] | None = None
    platform_uscc: Uscc | None = None


class Respondent(ContractModel):
    """The business complained about or reported (被投诉/被举报主体)."""

    name: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    uscc: Uscc | None = None
    legacy_registration_no: Annotated[str, _legacy_code("registration_no")] | None = None
    legacy_org_code: Annotated[str, _legacy_code("org_code")] | None = None
    entity_type_code: Annotated[str, _in_code_table("entity_type")] | None = None
    industry_code: Annotated[str, _in_code_table("industry_category")] | None = None
    operating_address: Address | None = None
    operating_region_code: RegionCode | None = None
    online_platform: OnlinePlatform | None = None
    credit_flags: list[Annotated[str, Field(max_length=50)]] = Field(default_factory=list)


class Subject(ContractModel):
    """The goods or service in dispute (客体)."""

    object_category_code: Annotated[str, _in_code_table("object_category")] | None = None
    goods_name: Annotated[str, Field(max_length=200)] | None = None
    brand: Annotated[str, Field(max_length=100)] | None = None
    model_spec: Annotated[str, Field(max_length=100)] | None = None
    quantity: Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=3)] | None = None
    unit: Annotated[str, Field(max_length=20)] | None = None
    amount: Money | None = None
    purchase_method: Annotated[str, Field(max_length=50)] | None = None
    order_no: Annotated[str, Field(max_length=100)] | None = None
    dispute_date: date | None = None


class Problem(ContractModel):
    """What went wrong: the question category, and for a report the suspected violation."""

    question_category_code: Annotated[str, _in_code_table("question_category")] | None = None
    suspected_violation: Annotated[str, Field(max_length=500)] | None = None
    tort_type_code: Annotated[str, _in_code_table("tort_type")] | None = None


class GeoPoint(ContractModel):
    lat: Annotated[float, Field(ge=-90, le=90)]
    lng: Annotated[float, Field(ge=-180, le=180)]
    coordinate_system: CoordinateSystem


class Occurrence(ContractModel):
    """When and where it happened; the incident region drives routing of reports."""

    occurred_at: AwareDatetime | None = None
    incident_region_code: RegionCode | None = None
    incident_address: Address | None = None
    location: GeoPoint | None = None


DeadlineOutcome = Literal["met", "missed"]


class DeadlineExtension(ContractModel):
    """One EXTENDED event about a time limit: applied (the new due day), or refused and flagged (why)."""

    event_id: Annotated[str, Field(max_length=64)]
    on: date
    applied: bool
    due_on: date  # the due day after this event (unchanged when refused)
    note: Annotated[str, Field(max_length=300)]


class Deadline(ContractModel):
    """A statutory time limit the ticket runs (or ran) under: the last working day, why, and how it ended."""

    kind: DeadlineKind
    starts_on: date
    due_on: date
    working_days: Annotated[int, Field(ge=1)]
    rule_set: Annotated[str, Field(max_length=80)]
    basis: Annotated[str, Field(max_length=300)]  # in English, for logs: "7 working days from receipt …"
    basis_zh: Annotated[str, Field(max_length=300)] | None = None  # the same for operators: "自收到投诉之日…"
    calendar_fallback: bool = False
    extensions: Annotated[int, Field(ge=0)] = 0
    extension_log: list[DeadlineExtension] = Field(default_factory=list, max_length=20)
    outcome: DeadlineOutcome | None = None  # None while the limit runs
    # The day (China time) of the status that ended it; for the reporter notice, the day the filing decision was
    # delivered to the ticket's sender (Lifecycle.reporter_notified_at) when that came before the matter ended.
    ended_on: date | None = None
    ended_by: Status | None = None  # that status; for a delivered filing decision, FILED or NOT_FILED

    @property
    def running(self) -> bool:
        return self.outcome is None


class Evidence(ContractModel):
    """What made a rule decide: the ticket field it looked at and what matched there."""

    field: Annotated[str, Field(max_length=100)]  # e.g. "registration.content", "respondent.credit_flags"
    matched: Annotated[str, Field(max_length=200)]  # the phrase, code or value that matched


JurisdictionOutcome = Literal["accept", "return", "review"]


class JurisdictionDecision(ContractModel):
    """Whose matter the ticket is (受理范围): market regulation's, another authority's (退单), or undecided."""

    outcome: JurisdictionOutcome
    rule_id: Annotated[str, Field(max_length=80)]
    evidence: list[Evidence] = Field(default_factory=list, max_length=20)
    reason: Annotated[str, Field(max_length=300)] | None = None  # in Chinese; a return names the authority
    competent_authority: Annotated[str, Field(max_length=100)] | None = None
    return_reason_code: Annotated[str, Field(max_length=20)] | None = None  # the 12345 return-reason code
    decided_at: AwareDatetime
    decided_by: Annotated[str, Field(max_length=100)] = "rules"  # or the operator who settled a review


class RouteDecision(ContractModel):
    """A destination the ticket was sent to besides the national platform, and the rule that chose it."""

    destination: Annotated[str, Field(max_length=64)]
    rule_id: Annotated[str, Field(max_length=80)]
    trigger: Literal["intake", "status"]
    urgent: bool = False
    evidence: list[Evidence] = Field(default_factory=list, max_length=20)
    at: AwareDatetime


class RoutingRevision(ContractModel):
    """The handler and time limits a ticket had until a new version of it changed them (kept as history)."""

    version: Annotated[str, Field(min_length=1, max_length=32)]  # the version that changed them
    at: AwareDatetime
    handler_org_code: Annotated[str, Field(max_length=64)] | None = None
    handler_org_name: Annotated[str, Field(max_length=100)] | None = None
    handler_level: HandlerLevel | None = None
    deadlines: list[Deadline] = Field(default_factory=list)


class Routing(ContractModel):
    """Which organisation handles the ticket and by when, where else it went, and why."""

    handler_org_code: Annotated[str, Field(max_length=64)] | None = None
    handler_org_name: Annotated[str, Field(max_length=100)] | None = None
    handler_level: HandlerLevel | None = None
    deadlines: list[Deadline] = Field(default_factory=list)
    jurisdiction: JurisdictionDecision | None = None
    routes: list[RouteDecision] = Field(default_factory=list, max_length=100)
    warnings: list[Annotated[str, Field(max_length=300)]] = Field(default_factory=list, max_length=20)
    revisions: list[RoutingRevision] = Field(default_factory=list, max_length=50)  # before each new version


class Lifecycle(ContractModel):
    """Where the ticket stands and how it got there."""

    status: Status = Status.RECEIVED
    not_accepted_reason: NotAcceptedReason | None = None
    last_sequence: Annotated[int, Field(ge=-1)] = -1
    # How many times the gateway has saved the ticket since intake (the store counts): a conditional save names
    # the revision it read, so two writers that read the same ticket cannot both write (no lost update).
    revision: Annotated[int, Field(ge=0)] = 0
    events: list[AppliedEvent] = Field(default_factory=list)
    rejected_events: list[RejectedEvent] = Field(default_factory=list)
    result: CaseResult | None = None
    follow_up: FollowUp | None = None
    # When the filing decision (FILED / NOT_FILED) was first delivered to the partner that sent the ticket (its
    # status callback answered 2xx): that partner answers the reporter, so the reporter notice (Art. 31) ends then.
    reporter_notified_at: AwareDatetime | None = None


class Attachment(ContractModel):
    uri: Annotated[str, Field(min_length=1, max_length=1000)]
    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    mime: Annotated[str, Field(pattern=r"^[\w.+-]+/[\w.+-]+$")]
    name: Annotated[str, Field(max_length=200)] | None = None
    size: Annotated[int, Field(ge=0)] | None = None


LinkState = Literal["linked", "confirmed", "dismissed"]
LINKS_KEPT = 50  # Ticket.links: a matter reported fifty times over is linked to the first fifty


class TicketLink(ContractModel):
    """A possible duplicate of this ticket that reached the gateway on another line or at another time: the same
    complainant about the same respondent, on a similar matter. Linked, never dropped: both tickets go on."""

    ticket_id: Annotated[str, Field(pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$")]
    national_registration_no: Annotated[str, Field(max_length=64)] | None = None  # when known at linking
    adapter_id: SystemId
    source_ticket_no: TicketNo
    received_at: AwareDatetime  # the other ticket's source_received_at
    score: Annotated[float, Field(ge=0, le=1)]
    similarity: Annotated[float, Field(ge=0, le=1)]  # of the two matters' normalised text
    days_apart: Annotated[float, Field(ge=0)]
    reasons: list[Annotated[str, Field(max_length=200)]] = Field(default_factory=list, max_length=10)  # Chinese
    state: LinkState = "linked"
    linked_at: AwareDatetime
    decided_by: Annotated[str, Field(max_length=100)] | None = None  # the operator who confirmed or dismissed
    decided_at: AwareDatetime | None = None
    note: Annotated[str, Field(max_length=300)] | None = None


class Ticket(ContractModel):
    """One complaint, report or enquiry in the national data standard."""

    schema_version: Literal["1.0"] = SCHEMA_VERSION
    ticket_id: Annotated[str, Field(pattern=r"^[0-9A-HJKMNP-TV-Z]{26}$")] = Field(
        default_factory=lambda: new_ulid()
    )
    idempotency_key: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None
    national_registration_no: Annotated[str, Field(max_length=64)] | None = None
    source: Source
    classification: Classification
    registration: Registration
    complainant: Complainant = Field(default_factory=Complainant)
    respondent: Respondent = Field(default_factory=Respondent)
    subject: Subject = Field(default_factory=Subject)
    problem: Problem = Field(default_factory=Problem)
    occurrence: Occurrence = Field(default_factory=Occurrence)
    routing: Routing = Field(default_factory=Routing)
    lifecycle: Lifecycle = Field(default_factory=Lifecycle)
    attachments: list[Attachment] = Field(default_factory=list, max_length=50)
    links: list[TicketLink] = Field(default_factory=list, max_length=LINKS_KEPT)
    sender_updates: SenderUpdates = Field(default_factory=SenderUpdates)

    @model_validator(mode="after")
    def _national_rules(self) -> Ticket:
        violations = legal_violations(self)
        if violations:
            raise PydanticCustomError(
                "legal_rules",
                "{summary}",
                {"summary": "; ".join(f"{f}: {m}" for f, _, m in violations), "violations": violations},
            )
        expected = idempotency_key_of(
            self.source.source_system, self.source.source_ticket_no, self.source.source_version
        )
        if self.idempotency_key is None:
            object.__setattr__(self, "idempotency_key", expected)
        elif self.idempotency_key != expected:
            raise PydanticCustomError(
                "legal_rules",
                "{summary}",
                {
                    "summary": "idempotency_key: does not match hash(source_system, source_ticket_no, "
                    "source_version)",
                    "violations": [("idempotency_key", "idempotency_key_matches_source", "does not match")],
                },
            )
        if self.classification.business_type is BusinessType.REPORT and self.complainant.confidential is None:
            object.__setattr__(self.complainant, "confidential", True)
        return self

    def held_for_review(self) -> bool:
        """Whether the ticket waits for an operator's jurisdiction decision: stored and not forwarded, or forwarded
        and a later version's update held (that version screens as another authority's matter, or undecided)."""
        decision = self.routing.jurisdiction
        if decision is None or decision.outcome != "review":
            return False
        return self.lifecycle.status is Status.RECEIVED or bool(self.sender_updates.held_versions())

    def returned_to_sender(self) -> bool:
        """Whether an operator returned the ticket to its sender (退单): held at intake, or a later version of a
        forwarded ticket held and returned. The matter went back to the sender, whose last word from the gateway
        is that 退单; what the national platform says of the ticket afterwards (its WITHDRAWN of the registration
        the gateway withdrew) is kept on the ticket, not called back."""
        decision = self.routing.jurisdiction
        return decision is not None and decision.outcome == "return"


def legal_violations(ticket: Ticket) -> list[tuple[str, str, str]]:
    """The national rules a ticket breaks, as (field, rule, message); empty when it keeps them all."""
    found: list[tuple[str, str, str]] = []
    business_type = ticket.classification.business_type
    if business_type is BusinessType.COMPLAINT:
        # Art. 9: a complaint names the complainant, a way to reach them, and what they ask for.
        required = {
            "complainant.name": ticket.complainant.name,
            "complainant.phone": ticket.complainant.phone,
            "complainant.address": ticket.complainant.address,
            "registration.request": ticket.registration.request,
        }
        for field, value in required.items():
            if not value:
                found.append((field, "complaint_requires", "a 投诉 must give this (Art. 9 of the complaint rules)"))
        if ticket.complainant.anonymous:
            found.append(
                ("complainant.anonymous", "complaint_not_anonymous", "a 投诉 cannot be anonymous (Art. 9)")
            )
    if business_type is BusinessType.REPORT and ticket.complainant.confidential is False:
        found.append(
            (
                "complainant.confidential",
                "reporter_confidential",
                "a 举报's reporter identity is confidential (Art. 33)",
            )
        )
    if ticket.lifecycle.status is Status.NOT_ACCEPTED and ticket.lifecycle.not_accepted_reason is None:
        found.append(("lifecycle.not_accepted_reason", "refusal_has_reason", "NOT_ACCEPTED needs a reason 1-7"))
    return found
