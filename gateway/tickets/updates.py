"""Changing a stored ticket: read it, change it, save it with its outbox, and do it again if someone wrote first."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_attempt, wait_random_exponential

from adapters.wire.results import ErrorClass, SendResult
from contracts.delivery import ClaimedDelivery, OutboxEntry
from contracts.ticket import Ticket
from gateway.store import ConcurrentUpdate, TicketStore

R = TypeVar("R")

log = logging.getLogger(__name__)

# Writers of one ticket are few (a status event, the national link's number, a delivered filing decision): five
# reads are plenty.
WRITE_ATTEMPTS = 5
# Two writers that collided should not collide again in step; the waits stay well under a request's time.
_WAIT = wait_random_exponential(multiplier=0.01, max=0.1)

TicketLoader = Callable[[], Awaitable[Ticket | None]]


@dataclass(frozen=True)
class TicketChange:
    """A ticket to save over the one read, and the deliveries to enqueue in the same step."""

    ticket: Ticket
    outbox: list[OutboxEntry] = field(default_factory=list)


# What a change says of the ticket it was given (its own verdict), and what to save (None: nothing).
Change = Callable[[Ticket], tuple[R, TicketChange | None]]


@dataclass(frozen=True)
class TicketUpdate(Generic[R]):
    """How an update ended: the change's verdict on the last read, whether it saved, and the new deliveries."""

    verdict: R
    saved: bool
    delivery_ids: tuple[str, ...] = ()


async def update_ticket(store: TicketStore, ticket: str | TicketLoader, change: Change[R]) -> TicketUpdate[R] | None:
    """Apply `change` to the stored ticket and save it, conditional on nobody having saved it meanwhile.

    `ticket` is the ticket's id, or a loader that finds it. On ConcurrentUpdate the ticket is read again
    and `change` applied again (so `change` must be pure); after WRITE_ATTEMPTS the last ConcurrentUpdate
    is raised. None when there is no such ticket (a loader may raise instead)."""
    load: TicketLoader = (lambda: store.get_ticket(ticket)) if isinstance(ticket, str) else ticket
    retrying = AsyncRetrying(stop=stop_after_attempt(WRITE_ATTEMPTS), wait=_WAIT,
                             retry=retry_if_exception_type(ConcurrentUpdate), reraise=True)
    result: TicketUpdate[R] | None = await retrying(_read_change_save, store, load, change)
    return result


def answer_not_kept(claim: ClaimedDelivery, result: SendResult, answered: str) -> SendResult:
    """The receiver took the delivery, but what that brought the ticket (the national platform's answer, a partner
    told the filing decision) could not be kept on it, other writers winning every try: not done, so it is sent
    again, and the receiver takes the same key the same way."""
    log.warning("could not keep on the ticket what a delivery brought; the delivery is sent again", extra={
        "ticket_id": claim.ticket_id, "delivery_id": claim.delivery_id, "kind": str(claim.kind), "answered": answered})
    return SendResult(status_code=None, error_class=ErrorClass.ANSWER_NOT_KEPT,
                      body=f"{answered}, but other writers of the ticket won every try", duration=result.duration)


async def _read_change_save(store: TicketStore, load: TicketLoader, change: Change[R]) -> TicketUpdate[R] | None:
    read = await load()
    if read is None:
        return None
    verdict, changed = change(read)
    if changed is None:
        return TicketUpdate(verdict, saved=False)
    ids = await store.save_ticket(changed.ticket, changed.outbox, expected_revision=read.lifecycle.revision)
    return TicketUpdate(verdict, saved=True, delivery_ids=ids)
