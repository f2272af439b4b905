"""The national platform link: forwarding keeps the national registration number the platform answers with."""

from __future__ import annotations

import json
import logging

from adapters.wire.results import SendResult
from adapters.wire.senders import Sender
from contracts.delivery import ClaimedDelivery
from contracts.ticket import Ticket
from gateway.store import ConcurrentUpdate, TicketStore
from gateway.tickets.updates import TicketChange, update_ticket

log = logging.getLogger(__name__)


def registration_number_of(body: str | None) -> str | None:
    """The `national_registration_no` of the platform's answer to a submission, if it gave one."""
    if not body:
        return None
    try:
        document = json.loads(body)
    except ValueError:
        return None
    number = document.get("national_registration_no") if isinstance(document, dict) else None
    return number if isinstance(number, str) and 0 < len(number) <= 64 else None


async def record_registration_number(store: TicketStore, ticket_id: str, number: str) -> bool:
    """Store the number on the ticket unless it already has one; True when the ticket changed."""

    def keep_number(ticket: Ticket) -> tuple[bool, TicketChange | None]:
        if ticket.national_registration_no == number:
            return False, None
        if ticket.national_registration_no is not None:
            log.warning("national platform answered a second registration number",
                        extra={"ticket_id": ticket_id, "kept": ticket.national_registration_no, "offered": number})
            return False, None
        return True, TicketChange(ticket.model_copy(update={"national_registration_no": number}))

    try:
        update = await update_ticket(store, ticket_id, keep_number)  # a status event may land meanwhile
    except ConcurrentUpdate:
        log.error("could not record the national registration number", extra={"ticket_id": ticket_id})
        return False
    return update is not None and update.saved


class NationalForwardSender:
    """Sends like the lane's own sender; on success, keeps the registration number on the ticket."""

    def __init__(self, inner: Sender, store: TicketStore) -> None:
        self.inner = inner
        self.store = store

    async def send(self, claim: ClaimedDelivery) -> SendResult:
        result = await self.inner.send(claim)
        if result.status_code is not None and 200 <= result.status_code < 300:
            number = registration_number_of(result.body)
            if number is not None:
                await record_registration_number(self.store, claim.ticket_id, number)
        return result

    async def aclose(self) -> None:
        await self.inner.aclose()
