"""Deadlines at risk: which statutory time limit of a ticket is still running, and whether it is due soon or overdue."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from contracts.codesets import Status
from contracts.ticket import Deadline, Ticket
from gateway.store import TicketQuery, TicketStore
from gateway.tickets.deadlines import WorkingDayCalendar, deadline_status

Risk = Literal["overdue", "due_soon"]
# Deadline risk is found by reading the newest tickets (there is no index of due dates yet): how many.
RISK_SCAN_LIMIT = 2000
S = Status

# A time limit stops running once the ticket reached one of these statuses (at any point of its history).
_ENDS: dict[str, frozenset[Status]] = {
    "acceptance": frozenset({S.ACCEPTED, S.NOT_ACCEPTED, S.MEDIATING, S.MEDIATED, S.MEDIATION_TERMINATED, S.FILED,
                             S.NOT_FILED}),
    "mediation": frozenset({S.MEDIATED, S.MEDIATION_TERMINATED, S.NOT_ACCEPTED}),
    "clue_check": frozenset({S.FILED, S.NOT_FILED, S.NOT_ACCEPTED}),
}
# Whatever the kind: the matter left this region or is over.
_OVER = frozenset({S.CLOSED, S.WITHDRAWN, S.TRANSFERRED_OUT, S.RETURNED})


@dataclass(frozen=True)
class DeadlineRisk:
    """The most pressing running time limit of one ticket."""

    risk: Risk
    deadline: Deadline

    @property
    def due_on(self) -> date:
        return self.deadline.due_on


def running_deadlines(ticket: Ticket) -> list[Deadline]:
    """The ticket's time limits that have not been met yet."""
    reached = {ticket.lifecycle.status} | {e.to_status for e in ticket.lifecycle.events}
    if ticket.lifecycle.status in _OVER:
        return []
    return [d for d in ticket.routing.deadlines if not (reached & _ENDS.get(d.kind, frozenset()))]


def deadline_risk(ticket: Ticket, now: datetime, calendar: WorkingDayCalendar, *,
                  due_soon_within: int = 2) -> DeadlineRisk | None:
    """`overdue` or `due_soon` for the most pressing running limit; None when every running limit is fine."""
    worst: DeadlineRisk | None = None
    for deadline in sorted(running_deadlines(ticket), key=lambda d: d.due_on):
        status = deadline_status(deadline, now, calendar, due_soon_within=due_soon_within)
        if status == "overdue":
            return DeadlineRisk("overdue", deadline)
        if status == "due_soon" and worst is None:
            worst = DeadlineRisk("due_soon", deadline)
    return worst


async def tickets_at_risk(store: TicketStore, now: datetime, calendar: WorkingDayCalendar, *,
                          due_soon_within: int) -> list[tuple[Ticket, DeadlineRisk]]:
    """Open tickets at risk among the newest RISK_SCAN_LIMIT, most pressing first (overdue, then by due day)."""
    found: list[tuple[Ticket, DeadlineRisk]] = []
    for ticket in await store.search_tickets(TicketQuery(limit=RISK_SCAN_LIMIT)):
        risk = deadline_risk(ticket, now, calendar, due_soon_within=due_soon_within)
        if risk is not None:
            found.append((ticket, risk))
    found.sort(key=lambda p: (p[1].risk != "overdue", p[1].due_on))
    return found
