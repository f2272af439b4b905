"""Deadlines at risk: the most pressing running time limit of a ticket; which due days are overdue or due soon."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Literal

from contracts.ticket import Deadline, Ticket
from gateway.store import TicketQuery
from gateway.tickets.deadlines import WorkingDayCalendar, deadline_status

Risk = Literal["overdue", "due_soon"]
RiskFilter = Literal["overdue", "due_soon", "at_risk"]


@dataclass(frozen=True)
class DeadlineRisk:
    """The most pressing running time limit of one ticket."""

    risk: Risk
    deadline: Deadline

    @property
    def due_on(self) -> date:
        return self.deadline.due_on


def risk_window(today: date, calendar: WorkingDayCalendar, *, due_soon_within: int = 2) -> date:
    """The first due day that is not due soon on `today`: a running limit due before `today` is overdue, one due
    from `today` up to (not including) this day is due soon (the same answer as `deadline_status`)."""
    return calendar.add_working_days(today, due_soon_within + 1)


def deadline_risk(ticket: Ticket, now: datetime, calendar: WorkingDayCalendar, *,
                  due_soon_within: int = 2) -> DeadlineRisk | None:
    """`overdue` or `due_soon` for the most pressing running limit; None when every running limit is fine."""
    worst: DeadlineRisk | None = None
    for deadline in sorted((d for d in ticket.routing.deadlines if d.running), key=lambda d: d.due_on):
        status = deadline_status(deadline, now, calendar, due_soon_within=due_soon_within)
        if status == "overdue":
            return DeadlineRisk("overdue", deadline)
        if status == "due_soon" and worst is None:
            worst = DeadlineRisk("due_soon", deadline)
    return worst


def risk_query(risk: RiskFilter, today: date, calendar: WorkingDayCalendar, *, due_soon_within: int,
               query: TicketQuery | None = None) -> TicketQuery:
    """`query` narrowed to the tickets whose most pressing running limit is overdue, due soon, or either (the
    store's index of due days answers it)."""
    soon_until = risk_window(today, calendar, due_soon_within=due_soon_within)
    window = {"overdue": (None, today), "due_soon": (today, soon_until), "at_risk": (None, soon_until)}[risk]
    return replace(query or TicketQuery(), due_from=window[0], due_before=window[1])
