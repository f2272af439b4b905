"""Status intake: a status event from the national platform moves the ticket and tells everyone who must hear."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from adapters.base import Adapter
from contracts.codesets import Status
from contracts.delivery import OutboxEntry
from contracts.status import StatusEvent
from contracts.ticket import Ticket
from gateway.errors import GatewayError
from gateway.store import ConcurrentUpdate, TicketStore
from gateway.tickets.deadlines import RuleBook, WorkingDayCalendar, with_deadlines
from gateway.tickets.lifecycle import EventDecision, EventOutcome, apply_status_event, record_rejection
from gateway.tickets.links import number_links_back
from gateway.tickets.routing import Router
from gateway.tickets.updates import WRITE_ATTEMPTS, TicketChange, update_ticket
from gateway.tickets.writeback import partner_writeback
from mapping.spec import MappingSpec

log = logging.getLogger(__name__)


class TicketNotFound(GatewayError, LookupError):
    """No stored ticket has the event's ticket id or national registration number."""


@dataclass(frozen=True)
class StatusOutcome:
    decision: EventDecision
    delivery_ids: tuple[str, ...] = ()


class StatusService:
    """Applies status events to stored tickets, works their deadlines out again, and enqueues the callback and
    routed deliveries atomically."""

    def __init__(self, store: TicketStore, specs: Mapping[str, MappingSpec], router: Router,
                 adapters: Mapping[str, Adapter], rules: RuleBook, calendar: WorkingDayCalendar) -> None:
        self.store = store
        self.specs = specs
        self.router = router
        self.adapters = adapters
        self.rules = rules
        self.calendar = calendar

    async def find(self, event: StatusEvent) -> Ticket:
        ticket_id = event.ticket_id
        if ticket_id is None and event.national_registration_no:
            ticket_id = await self.store.find_ticket_id(national_registration_no=event.national_registration_no)
        ticket = await self.store.get_ticket(ticket_id) if ticket_id else None
        if ticket is None:
            raise TicketNotFound(event.ticket_id or event.national_registration_no or "")
        return ticket

    async def apply(self, event: StatusEvent) -> StatusOutcome:
        """Apply one event; retried against concurrent writers so two events never overwrite each other."""

        numbered = False  # whether the event, as last applied, brought the ticket its registration number

        def change(ticket: Ticket) -> tuple[EventDecision, TicketChange | None]:
            nonlocal numbered
            decision = apply_status_event(ticket, event)
            numbered = ticket.national_registration_no is None and decision.ticket.national_registration_no is not None
            if decision.outcome is EventOutcome.ILLEGAL:
                # The status stays; the rejected event is kept on the ticket's record.
                return decision, TicketChange(record_rejection(ticket, event, decision.reason, datetime.now(UTC)))
            if not decision.changed:
                return decision, None
            decision = replace(decision, ticket=with_deadlines(decision.ticket, self.rules, self.calendar))
            routed, outbox = self.outbox_for(decision.ticket, event)
            return decision, TicketChange(routed, outbox)

        try:
            update = await update_ticket(self.store, lambda: self.find(event), change)
        except ConcurrentUpdate as err:
            raise ConcurrentUpdate(
                f"ticket changed {WRITE_ATTEMPTS} times while applying event {event.event_id}") from err
        if update is None:  # find() raises first; this keeps the types honest
            raise TicketNotFound(event.ticket_id or event.national_registration_no or "")
        decision = update.verdict
        if not decision.changed:
            log.info("status event not applied", extra={
                "ticket_id": decision.ticket.ticket_id, "outcome": str(decision.outcome), "reason": decision.reason})
            return StatusOutcome(decision)
        ticket = decision.ticket
        if numbered and ticket.links:  # the links the linked tickets show back were written without it
            await number_links_back(self.store, ticket)
        if event.status is Status.EXTENDED:
            self._log_extension(ticket, event)
        log.info("status event applied", extra={"ticket_id": ticket.ticket_id, "status": str(event.status),
                                                "adapter_id": ticket.source.adapter_id})
        return StatusOutcome(decision, update.delivery_ids)

    @staticmethod
    def _log_extension(ticket: Ticket, event: StatusEvent) -> None:
        """An EXTENDED event that moved no due day is flagged in the log (it is kept on the limit it names)."""
        logged = [e for d in ticket.routing.deadlines for e in d.extension_log if e.event_id == event.event_id]
        if not logged:
            reason = f"the ticket runs under no {event.extends or 'running'} limit"
        elif not logged[-1].applied:
            reason = logged[-1].note
        else:
            return
        log.warning("extension not applied", extra={"ticket_id": ticket.ticket_id, "event_id": event.event_id,
                                                    "reason": reason})

    def outbox_for(self, ticket: Ticket, event: StatusEvent) -> tuple[Ticket, list[OutboxEntry]]:
        """The callback to the originating partner, in its own codes, and the routed side deliveries; with the
        ticket that records each route's rule and evidence."""
        ticket, entries = self.router.status_routes(ticket, event)
        adapter_id = ticket.source.adapter_id
        if ticket.returned_to_sender():
            # The partner heard the 退单 and has the matter back (to dispatch elsewhere): a later national status —
            # the WITHDRAWN of the registration the return withdrew — would tell it the matter is still in hand here.
            log.info("status kept, not called back: the ticket was returned to its sender", extra={
                "ticket_id": ticket.ticket_id, "adapter_id": adapter_id, "status": str(event.status)})
            return ticket, entries
        callback = partner_writeback(self.adapters.get(adapter_id), self.specs.get(adapter_id), ticket, event)
        if callback is not None:
            entries.append(callback)
        return ticket, entries
