"""Status intake: a status event from the national platform moves the ticket and tells everyone who must hear."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from adapters.base import Adapter
from contracts.delivery import OutboxEntry
from contracts.status import StatusEvent
from contracts.ticket import Ticket
from gateway.store.base import ConcurrentUpdate, Store
from gateway.tickets.lifecycle import EventDecision, EventOutcome, apply_status_event, record_rejection
from gateway.tickets.routing import Router
from mapping.reverse import ReverseError, reverse
from mapping.spec import MappingSpec

log = logging.getLogger(__name__)

_WRITE_ATTEMPTS = 5


def callback_idempotency_key(ticket: Ticket, event: StatusEvent) -> str:
    """One key per status of one ticket, so the partner dedupes resends but not the next status."""
    return f"{ticket.idempotency_key}:{event.sequence}"


class TicketNotFound(LookupError):
    """No stored ticket has the event's ticket id or national registration number."""


@dataclass(frozen=True)
class StatusOutcome:
    decision: EventDecision
    delivery_ids: tuple[str, ...] = ()


class StatusService:
    """Applies status events to stored tickets and enqueues the callback and routed deliveries atomically."""

    def __init__(self, store: Store, specs: Mapping[str, MappingSpec], router: Router,
                 adapters: Mapping[str, Adapter]) -> None:
        self.store = store
        self.specs = specs
        self.router = router
        self.adapters = adapters

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
        for _ in range(_WRITE_ATTEMPTS):
            ticket = await self.find(event)
            decision = apply_status_event(ticket, event)
            if decision.outcome is EventOutcome.ILLEGAL:
                rejected = record_rejection(ticket, event, decision.reason, datetime.now(UTC))
                try:
                    await self.store.save_ticket(rejected, [], expected_sequence=ticket.lifecycle.last_sequence)
                except ConcurrentUpdate:
                    continue
            if not decision.changed:
                log.info("status event not applied", extra={
                    "ticket_id": ticket.ticket_id, "outcome": str(decision.outcome), "reason": decision.reason})
                return StatusOutcome(decision)
            routed, outbox = self.outbox_for(decision.ticket, event)
            try:
                ids = await self.store.save_ticket(routed, outbox,
                                                   expected_sequence=ticket.lifecycle.last_sequence)
            except ConcurrentUpdate:
                continue
            log.info("status event applied", extra={"ticket_id": ticket.ticket_id, "status": str(event.status),
                                                    "adapter_id": ticket.source.adapter_id})
            return StatusOutcome(decision, ids)
        raise ConcurrentUpdate(f"ticket changed {_WRITE_ATTEMPTS} times while applying event {event.event_id}")

    def outbox_for(self, ticket: Ticket, event: StatusEvent) -> tuple[Ticket, list[OutboxEntry]]:
        """The callback to the originating partner, in its own codes, and the routed side deliveries; with the
        ticket that records each route's rule and evidence."""
        ticket, entries = self.router.status_routes(ticket, event)
        adapter_id = ticket.source.adapter_id
        spec = self.specs.get(adapter_id)
        adapter = self.adapters.get(adapter_id)
        if adapter is not None and adapter.writes_back and spec is not None and spec.reverse is not None:
            try:
                fields = reverse(spec, ticket, event)
            except ReverseError as err:
                # A spec that cannot express a status is a configuration fault; the ticket still moves on.
                log.error("callback cannot be built", extra={"ticket_id": ticket.ticket_id,
                                                             "adapter_id": adapter_id, "reason": str(err)})
            else:
                entries.append(adapter.callback_entry(fields, idempotency_key=callback_idempotency_key(ticket, event)))
        return ticket, entries

