"""Deadlines through a ticket's lifecycle: the limits its status events started, extended and ended, and how."""

from __future__ import annotations

from datetime import date, datetime

from contracts.codesets import Status
from contracts.status import AppliedEvent, DeadlineKind
from contracts.ticket import Deadline, DeadlineExtension, Ticket
from gateway.tickets.deadlines.calendar import WorkingDayCalendar
from gateway.tickets.deadlines.compute import (
    ExtensionNotAllowed,
    china_date,
    compute_deadlines,
    deadline_from,
    extend,
    limit_of,
)
from gateway.tickets.deadlines.rules import RuleBook

S = Status

# The statuses that answer a limit: once the ticket reaches one, the limit has ended (met or missed by that day).
_ANSWERED_BY: dict[DeadlineKind, frozenset[Status]] = {
    "acceptance": frozenset({S.ACCEPTED, S.NOT_ACCEPTED, S.MEDIATING, S.MEDIATED, S.MEDIATION_TERMINATED,
                             S.FILED, S.NOT_FILED}),
    "mediation": frozenset({S.MEDIATED, S.MEDIATION_TERMINATED}),
    "clue_check": frozenset({S.FILED, S.NOT_FILED, S.NOT_ACCEPTED}),
    # No status answers it: the reporter is told when the filing decision reaches the partner that took the report
    # (Lifecycle.reporter_notified_at, see _told); a sender that hears no callbacks leaves it to end with the matter.
    "reporter_notice": frozenset(),
    "jurisdiction_dispute": frozenset(),
}
# Whatever the limit: the matter is over or has left this region, so every running limit ends.
_OVER = frozenset({S.CLOSED, S.WITHDRAWN, S.TRANSFERRED_OUT, S.RETURNED})
# An extension log keeps this many entries (the newest), as the contract allows.
_LOG_KEPT = 20


def deadlines_through(ticket: Ticket, rules: RuleBook, calendar: WorkingDayCalendar) -> list[Deadline]:
    """Every time limit the ticket ran under, from receipt through each applied status event in order.

    Pure, and worked out again from the whole history on every event, so an event applied after a gap gives the
    same limits as the events in order. Every limit counts under the rule set in force on the day of receipt. The
    reporter notice ends when the ticket's sender was told the filing decision (`reporter_notified_at`), in its
    place among the events: a matter that ended before that ended the notice with it."""
    received_at = ticket.source.source_received_at
    limits = compute_deadlines(ticket.classification.business_type.value, received_at, rules, calendar)
    received_on = china_date(received_at)
    told_at = ticket.lifecycle.reporter_notified_at
    decision: Status | None = None  # the filing decision that started the reporter notice
    for event in ticket.lifecycle.events:
        if told_at is not None and decision is not None and told_at <= event.at:
            limits = _told(limits, told_at, decision)
        day = max(china_date(event.at), received_on)
        status = event.to_status
        if status is S.EXTENDED:
            limits = _extended(limits, event, day, rules, calendar)
            continue
        limits = [_ended(d, day, status) if d.running and (status in _OVER or status in _ANSWERED_BY[d.kind])
                  else d for d in limits]
        starts = _started_by(ticket, status, limits)
        if starts is not None:
            start_at = max(event.at, received_at)
            limits.append(deadline_from(starts, start_at, received_on, rules, calendar))
            if starts == "reporter_notice":
                decision = status
    return limits if told_at is None or decision is None else _told(limits, told_at, decision)


def with_deadlines(ticket: Ticket, rules: RuleBook, calendar: WorkingDayCalendar) -> Ticket:
    """The ticket with its deadlines worked out again from its history."""
    deadlines = deadlines_through(ticket, rules, calendar)
    return ticket.model_copy(update={"routing": ticket.routing.model_copy(update={"deadlines": deadlines})})


def _started_by(ticket: Ticket, status: Status, limits: list[Deadline]) -> DeadlineKind | None:
    """The limit a status starts for this ticket, if it has not run under that limit yet."""
    business_type = ticket.classification.business_type.value
    kind: DeadlineKind | None = None
    if status is S.ACCEPTED and business_type == "02":
        kind = "mediation"  # Art. 21: 45 working days from acceptance
    elif status in (S.FILED, S.NOT_FILED) and business_type == "03" and _named_reporter(ticket):
        kind = "reporter_notice"  # Art. 31: a named reporter is told within 5 working days of the decision
    if kind is None or any(d.kind == kind for d in limits):
        return None
    return kind


def _named_reporter(ticket: Ticket) -> bool:
    complainant = ticket.complainant
    return not complainant.anonymous and bool(complainant.name)


def _ended(deadline: Deadline, day: date, status: Status) -> Deadline:
    return deadline.model_copy(update={"outcome": "met" if day <= deadline.due_on else "missed", "ended_on": day,
                                       "ended_by": status})


def _told(limits: list[Deadline], at: datetime, decision: Status) -> list[Deadline]:
    """The running reporter notice ended on the day (China time) the filing decision reached the ticket's sender,
    which tells the reporter (Art. 31); never before the day the notice started (the clocks of two systems)."""
    return [_ended(d, max(china_date(at), d.starts_on), decision) if d.kind == "reporter_notice" and d.running else d
            for d in limits]


def _extended(limits: list[Deadline], event: AppliedEvent, day: date, rules: RuleBook,
              calendar: WorkingDayCalendar) -> list[Deadline]:
    """The limits after an EXTENDED event: the limit it names extended within its rule, or the event recorded
    on that limit as refused (flagged) when the rule allows no further extension or the limit has ended."""
    target = _extension_target(limits, event.extends, rules)
    if target is None:
        return limits
    deadline = limits[target]
    if not deadline.running:
        note = f"not applied: {deadline.kind} already ended {deadline.outcome} on {deadline.ended_on}"
        changed = _logged(deadline, DeadlineExtension(event_id=event.event_id, on=day, applied=False,
                                                      due_on=deadline.due_on, note=note))
    else:
        try:
            longer = extend(deadline, rules, calendar)
        except ExtensionNotAllowed as refusal:
            changed = _logged(deadline, DeadlineExtension(event_id=event.event_id, on=day, applied=False,
                                                          due_on=deadline.due_on, note=f"not applied: {refusal}"[:300]))
        else:
            added = longer.working_days - deadline.working_days
            changed = _logged(longer, DeadlineExtension(event_id=event.event_id, on=day, applied=True,
                                                        due_on=longer.due_on,
                                                        note=f"extended by {added} working days"))
    return [changed if i == target else d for i, d in enumerate(limits)]


def _extension_target(limits: list[Deadline], named: DeadlineKind | None, rules: RuleBook) -> int | None:
    """Which limit an EXTENDED event is about: the newest of the kind it names; without a name, the one running
    limit that may be extended, else the most pressing running limit (where the refusal is recorded)."""
    if named is not None:
        found = [i for i, d in enumerate(limits) if d.kind == named]
        return found[-1] if found else None
    running = [i for i, d in enumerate(limits) if d.running]
    extensible = [i for i in running if limit_of(limits[i], rules).extension is not None]
    if len(extensible) == 1:
        return extensible[0]
    return min(running, key=lambda i: limits[i].due_on, default=None)


def _logged(deadline: Deadline, entry: DeadlineExtension) -> Deadline:
    return deadline.model_copy(update={"extension_log": [*deadline.extension_log, entry][-_LOG_KEPT:]})
