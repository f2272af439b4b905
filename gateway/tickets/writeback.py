"""Partner write-back: the callback that tells the originating partner of a status or a 退单, in its own codes."""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime

from adapters.base import Adapter
from contracts.delivery import OutboxEntry, ReportedStatus
from contracts.status import StatusEvent
from contracts.ticket import Ticket, idempotency_key_of
from mapping.engine import Returned
from mapping.reverse import ReverseError, reverse
from mapping.spec import MappingSpec

log = logging.getLogger(__name__)


def partner_writeback(adapter: Adapter | None, spec: MappingSpec | None, subject: Ticket | Returned,
                      event: StatusEvent | None = None, *, at: datetime | None = None) -> OutboxEntry | None:
    """The callback entry for the partner's lane; None when it hears nothing back or its spec cannot say it.

    `subject` is a ticket with the status `event` just applied to it, or a 退单 (`at`: when it was sent back)."""
    if adapter is None or not adapter.writes_back or spec is None or spec.reverse is None:
        return None
    try:
        fields = reverse(spec, subject, event, at=at)
    except ReverseError as err:
        # A spec that cannot express a status is a configuration fault; the ticket still moves on.
        if isinstance(subject, Returned):
            log.error("退单 callback cannot be built", extra={"adapter_id": adapter.id, "reason": str(err)})
        else:
            log.error("callback cannot be built", extra={"ticket_id": subject.ticket_id, "adapter_id": adapter.id,
                                                         "reason": str(err)})
        return None
    entry = adapter.callback_entry(fields, idempotency_key=writeback_key(spec, subject, event))
    if isinstance(subject, Returned):
        return entry
    # The store follows what the partner has heard of its ticket (the sender's echo) by the status each carries.
    sequence = event.sequence if event is not None else subject.lifecycle.last_sequence
    status = event.status if event is not None else subject.lifecycle.status
    return dataclasses.replace(entry, reports=ReportedStatus(sequence=sequence, status=status.value))


def writeback_key(spec: MappingSpec, subject: Ticket | Returned, event: StatusEvent | None = None) -> str:
    """One key per status of one ticket, so the partner dedupes resends but not the next status.

    A 退单 has no ticket: its key is the partner's ticket number, so a payload sent again is returned again
    under the same key and the partner drops the second callback as a repeat."""
    if isinstance(subject, Returned):
        return idempotency_key_of(spec.source_system, subject.source_ticket_no or "", "returned")
    sequence = event.sequence if event is not None else subject.lifecycle.last_sequence
    return f"{subject.idempotency_key}:{sequence}"
