"""The reporter notice on the running path (Art. 31): a named reporter counts as told when the status callback that
carries the filing decision is delivered to the partner that took the report, which answers the reporter."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from adapters.wire.results import SendResult
from adapters.wire.senders import Sender
from contracts.base import CHINA_STANDARD_TIME
from contracts.codesets import Status
from contracts.delivery import ClaimedDelivery, DeliveryKind
from contracts.ticket import Ticket
from gateway.store import ConcurrentUpdate, TicketStore
from gateway.tickets.deadlines import RuleBook, WorkingDayCalendar, with_deadlines
from gateway.tickets.updates import TicketChange, answer_not_kept, update_ticket

FILING_DECISIONS = frozenset({Status.FILED.value, Status.NOT_FILED.value})

# The rule book and calendar in force now (a reload may change them while the lanes run as started).
DeadlineBasis = Callable[[], tuple[RuleBook, WorkingDayCalendar]]


def told(ticket: Ticket, at: datetime, rules: RuleBook, calendar: WorkingDayCalendar) -> Ticket | None:
    """The ticket with its reporter told at `at` and its deadlines worked out again; None when that changes nothing:
    it was told before (the first delivery counts), or it runs under no reporter notice (no named reporter)."""
    if ticket.lifecycle.reporter_notified_at is not None:
        return None
    if not any(d.kind == "reporter_notice" for d in ticket.routing.deadlines):
        return None
    lifecycle = ticket.lifecycle.model_copy(update={"reporter_notified_at": at})
    return with_deadlines(ticket.model_copy(update={"lifecycle": lifecycle}), rules, calendar)


async def record_reporter_notified(store: TicketStore, ticket_id: str, at: datetime, rules: RuleBook,
                                   calendar: WorkingDayCalendar) -> bool:
    """Keep on the ticket that its reporter was told at `at`; True when the ticket changed. Raises ConcurrentUpdate
    when other writers of the ticket won every try (the caller sends again)."""

    def keep(ticket: Ticket) -> tuple[bool, TicketChange | None]:
        changed = told(ticket, at, rules, calendar)
        return changed is not None, None if changed is None else TicketChange(changed)

    update = await update_ticket(store, ticket_id, keep)  # status events may land meanwhile
    return update is not None and update.saved


class PartnerCallbackSender:
    """Sends a partner's status callbacks with the adapter's own sender; once the callback carrying the filing
    decision is delivered (2xx), keeps on the ticket when its reporter was told, which ends the reporter notice."""

    def __init__(self, inner: Sender, store: TicketStore, deadlines: DeadlineBasis) -> None:
        self.inner = inner
        self.store = store
        self.deadlines = deadlines

    async def send(self, claim: ClaimedDelivery) -> SendResult:
        result = await self.inner.send(claim)
        reports = claim.reports
        if (result.status_code is None or not 200 <= result.status_code < 300 or claim.kind is not DeliveryKind.CALLBACK
                or reports is None or reports.status not in FILING_DECISIONS):
            return result
        rules, calendar = self.deadlines()
        try:
            await record_reporter_notified(self.store, claim.ticket_id, datetime.now(CHINA_STANDARD_TIME), rules,
                                           calendar)
        except ConcurrentUpdate:  # never delivered without the notice kept: the next try keeps it
            return answer_not_kept(claim, result, f"{reports.status} delivered")
        return result

    async def aclose(self) -> None:
        await self.inner.aclose()
