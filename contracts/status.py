"""The ticket lifecycle: status events and the transitions the national process allows."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AwareDatetime, Field, field_validator, model_validator

from contracts.base import ContractModel, Money, no_control_characters
from contracts.codesets import NotAcceptedReason, Satisfaction, Status

S = Status

# The statutory time limits a ticket can run under (their lengths are rules: gateway/tickets/deadlines).
DeadlineKind = Literal["acceptance", "mediation", "clue_check", "reporter_notice", "jurisdiction_dispute"]

# Which status may follow which. EXTENDED is a state of its own (the deadline moved) from which the
# ticket continues where it was; RETURNED tickets may be dispatched again.
_OPEN_AFTER_ACCEPTANCE = {S.MEDIATING, S.FILED, S.NOT_FILED, S.EXTENDED, S.CLOSED, S.WITHDRAWN, S.TRANSFERRED_OUT}
TRANSITIONS: dict[Status, frozenset[Status]] = {
    S.RECEIVED: frozenset({S.DISPATCHED, S.ACCEPTED, S.NOT_ACCEPTED, S.RETURNED, S.TRANSFERRED_OUT,
                           S.WITHDRAWN, S.EXTENDED, S.CLOSED}),
    S.DISPATCHED: frozenset({S.ACCEPTED, S.NOT_ACCEPTED, S.RETURNED, S.TRANSFERRED_OUT, S.WITHDRAWN,
                             S.EXTENDED, S.CLOSED}),
    S.ACCEPTED: frozenset(_OPEN_AFTER_ACCEPTANCE),
    S.MEDIATING: frozenset({S.MEDIATED, S.MEDIATION_TERMINATED, S.EXTENDED, S.WITHDRAWN}),
    S.MEDIATED: frozenset({S.CLOSED}),
    S.MEDIATION_TERMINATED: frozenset({S.FILED, S.NOT_FILED, S.CLOSED}),
    S.FILED: frozenset({S.EXTENDED, S.CLOSED}),
    S.NOT_FILED: frozenset({S.CLOSED}),
    S.EXTENDED: frozenset({S.ACCEPTED, S.NOT_ACCEPTED, S.MEDIATING, S.MEDIATED, S.MEDIATION_TERMINATED,
                           S.FILED, S.NOT_FILED, S.EXTENDED, S.CLOSED, S.WITHDRAWN}),
    S.NOT_ACCEPTED: frozenset({S.CLOSED}),
    S.RETURNED: frozenset({S.DISPATCHED, S.CLOSED}),
    S.TRANSFERRED_OUT: frozenset({S.CLOSED}),
    S.WITHDRAWN: frozenset({S.CLOSED}),
    S.CLOSED: frozenset(),
}
TERMINAL: frozenset[Status] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


class CaseResult(ContractModel):
    """What became of the matter: mediation, case outcome and money."""

    text: Annotated[str, Field(max_length=4000)] | None = None
    mediation_agreement_no: Annotated[str, Field(max_length=64)] | None = None
    recovered_amount: Money | None = None  # 挽回经济损失
    compensation_amount: Money | None = None  # 加倍赔偿
    spiritual_compensation_amount: Money | None = None  # 精神赔偿
    case_value: Money | None = None  # 案值
    penalty_amount: Money | None = None  # 罚款
    confiscation_amount: Money | None = None  # 没收
    closed_at: AwareDatetime | None = None

    _text_is_text = field_validator("text", "mediation_agreement_no")(no_control_characters)


class FollowUp(ContractModel):
    """The follow-up visit (回访) with the complainant's satisfaction."""

    visited_at: AwareDatetime
    satisfaction: Satisfaction
    comment: Annotated[str, Field(max_length=1000)] | None = None

    _text_is_text = field_validator("comment")(no_control_characters)


class StatusEvent(ContractModel):
    """One status change reported for a ticket, by the national platform or a handling organisation."""

    event_id: Annotated[str, Field(min_length=1, max_length=64)]
    ticket_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    national_registration_no: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    sequence: Annotated[int, Field(ge=0)]
    at: AwareDatetime
    status: Status
    org: Annotated[str, Field(max_length=100)] | None = None
    actor: Annotated[str, Field(max_length=100)] | None = None
    opinion: Annotated[str, Field(max_length=4000)] | None = None
    not_accepted_reason: NotAcceptedReason | None = None
    result: CaseResult | None = None
    follow_up: FollowUp | None = None
    extends: DeadlineKind | None = None  # an EXTENDED event names the time limit it extends

    _text_is_text = field_validator("event_id", "ticket_id", "national_registration_no", "org", "actor",
                                    "opinion")(no_control_characters)

    @model_validator(mode="after")
    def _reason_goes_with_refusal(self) -> StatusEvent:
        if self.ticket_id is None and self.national_registration_no is None:
            raise ValueError("a status event names its ticket: give ticket_id or national_registration_no")
        if self.status is Status.NOT_ACCEPTED and self.not_accepted_reason is None:
            raise ValueError("not_accepted_reason: a NOT_ACCEPTED event needs a reason code 1-7 (Art. 15)")
        if self.status is not Status.NOT_ACCEPTED and self.not_accepted_reason is not None:
            raise ValueError("not_accepted_reason: only a NOT_ACCEPTED event carries a reason")
        if self.extends is not None and self.status is not Status.EXTENDED:
            raise ValueError("extends: only an EXTENDED event names a time limit to extend")
        return self


class AppliedEvent(ContractModel):
    """A status event as recorded on the ticket's history."""

    at: AwareDatetime
    from_status: Status
    to_status: Status
    sequence: int
    event_id: str
    org: str | None = None
    actor: str | None = None
    opinion: str | None = None
    extends: DeadlineKind | None = None


class RejectedEvent(ContractModel):
    """A status event the ticket could not take (an illegal transition), kept for the record."""

    received_at: AwareDatetime
    event_id: str
    sequence: int
    status: Status
    reason: Annotated[str, Field(max_length=500)]
