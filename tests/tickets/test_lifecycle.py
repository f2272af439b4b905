"""Status events drive the ticket's state machine; repeats, late and early events are told apart."""

from __future__ import annotations

from typing import Any

import pytest

from contracts.codesets import Status
from contracts.status import TRANSITIONS, StatusEvent
from contracts.ticket import Ticket
from gateway.tickets.lifecycle import EventOutcome, apply_status_event
from tests.sample_tickets import make_ticket


def event(seq: int, status: Status, **extra: Any) -> StatusEvent:
    return StatusEvent(event_id=f"evt-{seq}", ticket_id="t", sequence=seq, at="2024-06-12T10:00:00+08:00",
                       status=status, **extra)


def drive(ticket: Ticket, *statuses: Status) -> Ticket:
    for status in statuses:
        seq = ticket.lifecycle.last_sequence + 1
        decision = apply_status_event(ticket, event(seq, status))
        assert decision.outcome is EventOutcome.APPLIED, decision.reason
        ticket = decision.ticket
    return ticket


def test_a_complaint_goes_from_received_through_mediation_to_closed() -> None:
    ticket = drive(make_ticket(), Status.ACCEPTED, Status.MEDIATING, Status.MEDIATED, Status.CLOSED)
    assert ticket.lifecycle.status is Status.CLOSED
    assert [e.to_status for e in ticket.lifecycle.events] == ["ACCEPTED", "MEDIATING", "MEDIATED", "CLOSED"]
    assert ticket.lifecycle.events[0].from_status is Status.RECEIVED


def test_a_refusal_records_its_reason() -> None:
    decision = apply_status_event(make_ticket(), event(0, Status.NOT_ACCEPTED, not_accepted_reason="5"))
    assert decision.ticket.lifecycle.not_accepted_reason == "5"


S = Status
_EVERY = frozenset(Status)
# The transitions the national process forbids, written out from its rules (市场监督管理投诉举报处理暂行办法 and the
# platform's status codes), not taken from contracts.status.TRANSITIONS: a ticket never goes back to RECEIVED
# or DISPATCHED once acted on; mediation (调解) follows acceptance (受理), and ends mediated or terminated before
# anything else; a filing decision (立案/不立案) follows acceptance or a failed mediation; a refusal (不予受理),
# a withdrawal (撤回), a transfer out (移送) and a mediated end leave only closing (办结); CLOSED is final.
_ONLY_CLOSING = _EVERY - {S.CLOSED}
FORBIDDEN: dict[Status, frozenset[Status]] = {
    S.RECEIVED: frozenset({S.RECEIVED, S.MEDIATING, S.MEDIATED, S.MEDIATION_TERMINATED, S.FILED, S.NOT_FILED}),
    S.DISPATCHED: frozenset({S.RECEIVED, S.DISPATCHED, S.MEDIATING, S.MEDIATED, S.MEDIATION_TERMINATED, S.FILED,
                             S.NOT_FILED}),
    S.ACCEPTED: frozenset({S.RECEIVED, S.DISPATCHED, S.ACCEPTED, S.NOT_ACCEPTED, S.MEDIATED,
                           S.MEDIATION_TERMINATED, S.RETURNED}),
    S.MEDIATING: frozenset({S.RECEIVED, S.DISPATCHED, S.ACCEPTED, S.NOT_ACCEPTED, S.MEDIATING, S.FILED,
                            S.NOT_FILED, S.RETURNED, S.TRANSFERRED_OUT, S.CLOSED}),
    S.MEDIATED: _ONLY_CLOSING,
    S.MEDIATION_TERMINATED: _EVERY - {S.FILED, S.NOT_FILED, S.CLOSED},
    S.FILED: _EVERY - {S.EXTENDED, S.CLOSED},
    S.NOT_FILED: _ONLY_CLOSING,
    S.EXTENDED: frozenset({S.RECEIVED, S.DISPATCHED, S.RETURNED, S.TRANSFERRED_OUT}),
    S.NOT_ACCEPTED: _ONLY_CLOSING,
    S.RETURNED: _EVERY - {S.DISPATCHED, S.CLOSED},
    S.TRANSFERRED_OUT: _ONLY_CLOSING,
    S.WITHDRAWN: _ONLY_CLOSING,
    S.CLOSED: _EVERY,
}
ILLEGAL = [(current, target) for current in Status for target in sorted(FORBIDDEN[current])]


def test_the_contract_forbids_exactly_what_the_rules_forbid() -> None:
    code = {(c, t) for c in Status for t in Status if t not in TRANSITIONS[c]}
    assert code == set(ILLEGAL), {"forbidden by the rules, allowed by the code": set(ILLEGAL) - code,
                                  "allowed by the rules, forbidden by the code": code - set(ILLEGAL)}


@pytest.mark.parametrize(("current", "target"), ILLEGAL, ids=[f"{c}->{t}" for c, t in ILLEGAL])
def test_every_illegal_transition_is_rejected_with_the_allowed_next_statuses(current: Status, target: Status) -> None:
    ticket = make_ticket()
    ticket = ticket.model_copy(update={"lifecycle": ticket.lifecycle.model_copy(
        update={"status": current, "last_sequence": 3})})
    extra = {"not_accepted_reason": "1"} if target is Status.NOT_ACCEPTED else {}
    decision = apply_status_event(ticket, event(4, target, **extra))
    assert decision.outcome is EventOutcome.ILLEGAL
    assert f"from {current} to {target}" in decision.reason
    assert decision.ticket is ticket


def test_a_repeated_event_is_a_duplicate_and_changes_nothing() -> None:
    ticket = drive(make_ticket(), Status.ACCEPTED)
    decision = apply_status_event(ticket, event(0, Status.ACCEPTED))
    assert decision.outcome is EventOutcome.DUPLICATE and decision.ticket is ticket


def test_a_skipped_event_arriving_after_a_later_one_is_stale() -> None:
    ticket = apply_status_event(make_ticket(), event(0, Status.ACCEPTED)).ticket
    ticket = apply_status_event(ticket, event(2, Status.MEDIATING)).ticket  # event 1 was skipped
    decision = apply_status_event(ticket, event(1, Status.EXTENDED))
    assert decision.outcome is EventOutcome.STALE
    assert decision.ticket.lifecycle.status is Status.MEDIATING


def test_an_event_after_a_gap_that_cannot_follow_yet_waits_for_the_missing_one() -> None:
    ticket = make_ticket()  # RECEIVED; event 0 (ACCEPTED) and 1 (MEDIATING) have not arrived
    decision = apply_status_event(ticket, event(2, Status.MEDIATED))
    assert decision.outcome is EventOutcome.EARLY
    ticket = drive(ticket, Status.ACCEPTED, Status.MEDIATING)
    assert apply_status_event(ticket, event(2, Status.MEDIATED)).outcome is EventOutcome.APPLIED


def test_an_event_after_a_gap_that_can_follow_is_applied() -> None:
    decision = apply_status_event(make_ticket(), event(5, Status.ACCEPTED))
    assert decision.outcome is EventOutcome.APPLIED
    assert decision.ticket.lifecycle.last_sequence == 5
