"""Deadlines follow the lifecycle: each status event starts, extends or ends the ticket's time limits, and each
limit that ends records met or missed with the day. Expected days were counted by hand on the State Council
holiday notices (2023: National Day 09-29..10-06; 2024: Mid-Autumn 09-15..17, National Day 10-01..07, make-up
working days 09-14, 09-29, 10-12)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.codesets import Status
from contracts.status import StatusEvent
from contracts.ticket import Deadline, Ticket
from gateway.tickets.deadlines import RuleBook, WorkingDayCalendar, with_deadlines
from gateway.tickets.lifecycle import EventOutcome, apply_status_event
from tests.sample_tickets import make_ticket

S = Status


class Driver:
    """Applies events to a ticket as the status service does: the state machine, then the deadlines again."""

    def __init__(self, rules: RuleBook, calendar: WorkingDayCalendar) -> None:
        self.rules, self.calendar = rules, calendar

    def start(self, kind: str, received: str, **changes: Any) -> Ticket:
        ticket = make_ticket(kind, source__source_received_at=f"{received}T10:00:00+08:00",
                             registration__registered_at=f"{received}T10:05:00+08:00", **changes)
        return with_deadlines(ticket, self.rules, self.calendar)

    def __call__(self, ticket: Ticket, status: Status, on: str, **extra: Any) -> Ticket:
        seq = ticket.lifecycle.last_sequence + 1
        event = StatusEvent(event_id=f"evt-{seq}", ticket_id=ticket.ticket_id, sequence=seq,
                            at=f"{on}T15:00:00+08:00", status=status, **extra)
        decision = apply_status_event(ticket, event)
        assert decision.outcome is EventOutcome.APPLIED, decision.reason
        return with_deadlines(decision.ticket, self.rules, self.calendar)


@pytest.fixture
def drive(rules: RuleBook, calendar: WorkingDayCalendar) -> Driver:
    return Driver(rules, calendar)


def limit(ticket: Ticket, kind: str) -> Deadline:
    [found] = [d for d in ticket.routing.deadlines if d.kind == kind]
    return found


def test_acceptance_is_met_and_starts_mediation_45_working_days_from_the_events_day(drive: Driver) -> None:
    ticket = drive.start("complaint", "2024-08-28")
    assert [(d.kind, d.due_on) for d in ticket.routing.deadlines] == [("acceptance", date(2024, 9, 6))]

    ticket = drive(ticket, S.ACCEPTED, "2024-09-02")
    acceptance, mediation = ticket.routing.deadlines
    assert (acceptance.kind, acceptance.outcome, acceptance.ended_on, acceptance.ended_by) == (
        "acceptance", "met", date(2024, 9, 2), S.ACCEPTED)
    assert (mediation.kind, mediation.starts_on, mediation.due_on, mediation.outcome) == (
        "mediation", date(2024, 9, 2), date(2024, 11, 8), None)
    assert mediation.basis == "45 working days from acceptance 2024-09-02 (Art. 21)"
    assert mediation.rule_set == "order20-2022"


def test_an_acceptance_after_the_due_day_is_missed(drive: Driver) -> None:
    ticket = drive(drive.start("complaint", "2024-08-28"), S.ACCEPTED, "2024-09-09")
    assert (limit(ticket, "acceptance").outcome, limit(ticket, "acceptance").ended_on) == ("missed", date(2024, 9, 9))
    assert limit(ticket, "mediation").starts_on == date(2024, 9, 9)


def test_the_ticket_keeps_every_limit_it_ran_under_to_the_end(drive: Driver) -> None:
    ticket = drive.start("complaint", "2024-08-28")
    for status, on in ((S.ACCEPTED, "2024-09-02"), (S.MEDIATING, "2024-09-03"), (S.MEDIATED, "2024-11-11"),
                       (S.CLOSED, "2024-11-12")):
        ticket = drive(ticket, status, on)
    assert [(d.kind, d.outcome, d.ended_on, d.ended_by) for d in ticket.routing.deadlines] == [
        ("acceptance", "met", date(2024, 9, 2), S.ACCEPTED),
        ("mediation", "missed", date(2024, 11, 11), S.MEDIATED),  # due Fri 11-08
    ]


def test_a_terminal_status_ends_a_running_limit(drive: Driver) -> None:
    ticket = drive(drive.start("complaint", "2024-06-11"), S.WITHDRAWN, "2024-06-14")
    assert (limit(ticket, "acceptance").outcome, limit(ticket, "acceptance").ended_by) == ("met", S.WITHDRAWN)
    ticket = drive(drive.start("complaint", "2024-06-11", source__source_ticket_no="KL-2"), S.CLOSED, "2024-06-21")
    assert (limit(ticket, "acceptance").outcome, limit(ticket, "acceptance").due_on) == ("missed", date(2024, 6, 20))


def test_an_extension_moves_the_clue_check_once_and_a_further_one_is_recorded_not_applied(drive: Driver) -> None:
    ticket = drive.start("report", "2023-09-25")
    assert limit(ticket, "clue_check").due_on == date(2023, 10, 20)

    ticket = drive(ticket, S.EXTENDED, "2023-10-18", extends="clue_check")
    clue = limit(ticket, "clue_check")
    assert (clue.due_on, clue.extensions, clue.working_days, clue.outcome) == (date(2023, 11, 10), 1, 30, None)
    assert [(e.event_id, e.applied, e.due_on) for e in clue.extension_log] == [("evt-0", True, date(2023, 11, 10))]

    ticket = drive(ticket, S.EXTENDED, "2023-11-08", extends="clue_check")
    clue = limit(ticket, "clue_check")
    assert (clue.due_on, clue.extensions) == (date(2023, 11, 10), 1)
    refused = clue.extension_log[-1]
    assert (refused.event_id, refused.applied, refused.due_on) == ("evt-1", False, date(2023, 11, 10))
    assert "allows 1" in refused.note


def test_an_extension_that_names_no_limit_extends_the_one_that_may_be_extended(drive: Driver) -> None:
    ticket = drive(drive.start("report", "2023-09-25"), S.EXTENDED, "2023-10-18")
    assert limit(ticket, "clue_check").due_on == date(2023, 11, 10)


def test_a_limit_without_an_extension_rule_records_the_extension_as_refused(drive: Driver) -> None:
    ticket = drive(drive.start("complaint", "2024-06-11"), S.EXTENDED, "2024-06-19", extends="acceptance")
    acceptance = limit(ticket, "acceptance")
    assert (acceptance.due_on, acceptance.extensions) == (date(2024, 6, 20), 0)
    assert [(e.applied, "cannot be extended" in e.note) for e in acceptance.extension_log] == [(False, True)]


def test_the_filing_decision_ends_the_clue_check_and_starts_a_named_reporters_notice(drive: Driver) -> None:
    ticket = drive(drive.start("report", "2023-09-25"), S.ACCEPTED, "2023-09-26")
    ticket = drive(ticket, S.FILED, "2023-10-16")
    clue, notice = ticket.routing.deadlines
    assert (clue.kind, clue.outcome, clue.ended_on) == ("clue_check", "met", date(2023, 10, 16))
    assert (notice.kind, notice.starts_on, notice.due_on, notice.outcome) == (
        "reporter_notice", date(2023, 10, 16), date(2023, 10, 23), None)
    ticket = drive(ticket, S.CLOSED, "2023-10-20")
    assert (limit(ticket, "reporter_notice").outcome, limit(ticket, "reporter_notice").ended_by) == ("met", S.CLOSED)


def told(ticket: Ticket, at: str, drive: Driver) -> Ticket:
    """The ticket as it stands once its filing decision reached its sender at `at`, deadlines worked out again."""
    lifecycle = ticket.lifecycle.model_copy(update={"reporter_notified_at": datetime.fromisoformat(at)})
    return with_deadlines(ticket.model_copy(update={"lifecycle": lifecycle}), drive.rules, drive.calendar)


def filed_report(drive: Driver, decision: Status = S.FILED) -> Ticket:
    """A named report accepted and decided on Mon 2023-10-16: its notice is due Mon 2023-10-23."""
    return drive(drive(drive.start("report", "2023-09-25"), S.ACCEPTED, "2023-09-26"), decision, "2023-10-16")


def test_the_filing_decision_delivered_to_the_sender_within_5_working_days_meets_the_notice(drive: Driver) -> None:
    ticket = told(filed_report(drive), "2023-10-20T11:00:00+08:00", drive)
    notice = limit(ticket, "reporter_notice")
    assert (notice.outcome, notice.ended_on, notice.ended_by) == ("met", date(2023, 10, 20), S.FILED)
    # The matter closing a month later does not move the end: the reporter was told on the 20th.
    closed = drive(ticket, S.CLOSED, "2023-11-20")
    assert (limit(closed, "reporter_notice").outcome, limit(closed, "reporter_notice").ended_on) == (
        "met", date(2023, 10, 20))
    assert limit(closed, "clue_check").ended_on == date(2023, 10, 16)


def test_a_not_filed_decision_delivered_on_the_due_day_meets_the_notice(drive: Driver) -> None:
    ticket = told(filed_report(drive, S.NOT_FILED), "2023-10-23T17:30:00+08:00", drive)
    notice = limit(ticket, "reporter_notice")
    assert (notice.due_on, notice.outcome, notice.ended_on, notice.ended_by) == (
        date(2023, 10, 23), "met", date(2023, 10, 23), S.NOT_FILED)


def test_the_filing_decision_delivered_after_5_working_days_misses_the_notice_on_the_china_date(
        drive: Driver) -> None:
    # 17:00 UTC on Mon the 23rd is 01:00 on Tue the 24th in China: a day late.
    ticket = told(filed_report(drive), "2023-10-23T17:00:00+00:00", drive)
    notice = limit(ticket, "reporter_notice")
    assert (notice.outcome, notice.ended_on, notice.ended_by) == ("missed", date(2023, 10, 24), S.FILED)


def test_without_a_delivered_filing_decision_the_notice_runs_until_the_matter_ends(drive: Driver) -> None:
    ticket = filed_report(drive)
    assert ticket.lifecycle.reporter_notified_at is None and limit(ticket, "reporter_notice").running
    closed = drive(ticket, S.CLOSED, "2023-11-20")
    assert (limit(closed, "reporter_notice").outcome, limit(closed, "reporter_notice").ended_by) == (
        "missed", S.CLOSED)


def test_a_matter_closed_before_the_decision_reached_its_sender_ends_the_notice_with_it(drive: Driver) -> None:
    closed = drive(filed_report(drive), S.CLOSED, "2023-10-18")
    ticket = told(closed, "2023-10-30T09:00:00+08:00", drive)
    notice = limit(ticket, "reporter_notice")
    assert (notice.outcome, notice.ended_on, notice.ended_by) == ("met", date(2023, 10, 18), S.CLOSED)


def test_a_delivery_stamped_before_the_decision_by_another_clock_ends_the_notice_on_its_first_day(
        drive: Driver) -> None:
    ticket = told(filed_report(drive), "2023-10-15T20:00:00+08:00", drive)  # the event says 10-16 15:00
    notice = limit(ticket, "reporter_notice")
    assert (notice.outcome, notice.ended_on) == ("met", date(2023, 10, 16))


def test_an_anonymous_reporter_is_not_owed_a_notice(drive: Driver) -> None:
    ticket = drive.start("report", "2023-09-25", complainant={"anonymous": True})
    ticket = drive(drive(ticket, S.ACCEPTED, "2023-09-26"), S.NOT_FILED, "2023-10-16")
    assert [d.kind for d in ticket.routing.deadlines] == ["clue_check"]


def test_an_enquiry_runs_under_no_limit(drive: Driver) -> None:
    ticket = drive(drive.start("enquiry", "2024-06-11"), S.CLOSED, "2024-06-12")
    assert ticket.routing.deadlines == []


def test_only_an_extended_event_names_a_limit() -> None:
    with pytest.raises(ValidationError, match="only an EXTENDED event"):
        StatusEvent(event_id="e", ticket_id="t", sequence=0, at="2024-06-12T10:00:00+08:00", status=S.ACCEPTED,
                    extends="acceptance")
