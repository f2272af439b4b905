"""Settling a jurisdiction review: an operator accepts a held ticket (it goes on as a normal ticket) or returns it
(the partner gets the 退单 write-back). Either way one store write carries the ticket and what it sends."""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from contracts.codesets import NotAcceptedReason, Status
from contracts.delivery import OutboxEntry, ReportedStatus
from contracts.followups import Withdrawal, follow_up_key
from contracts.ticket import JurisdictionDecision, Ticket
from gateway.errors import GatewayError
from gateway.tickets.intake import IntakeService, returned_by, with_jurisdiction
from gateway.tickets.updates import TicketChange, update_ticket

log = logging.getLogger(__name__)


class Settlement(BaseModel):
    """An operator's decision on a ticket held for review."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    outcome: Literal["accept", "return"]
    reason: Annotated[str, Field(min_length=2, max_length=300)]  # Chinese; on a return the partner reads it
    competent_authority: Annotated[str, Field(min_length=1, max_length=100)] | None = None
    return_reason_code: NotAcceptedReason = NotAcceptedReason.NOT_MARKET_SUPERVISION

    @model_validator(mode="after")
    def _return_names_authority(self) -> Settlement:
        if self.outcome == "return" and not self.competent_authority:
            raise ValueError("a return names the likely competent authority (competent_authority)")
        return self


class ReviewRefused(GatewayError, LookupError):
    """The ticket cannot be settled: it does not exist, or it is not waiting for review."""

    def __init__(self, code: Literal["not_found", "not_under_review"], message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Settled:
    ticket: Ticket
    decision: JurisdictionDecision
    delivery_ids: tuple[str, ...]


async def settle_review(intake: IntakeService, ticket_id: str, settlement: Settlement, *, actor: str,
                        now: datetime | None = None) -> Settled:
    """Record the operator's decision on a held ticket and enqueue what it sends, in one store write:
    accept → the national forward and the intake routing rules' deliveries; return → the status RETURNED and
    the partner's 退单 write-back on its callback lane (none for partners without one)."""
    at = now or datetime.now(UTC)

    def settle(ticket: Ticket) -> tuple[tuple[Ticket, JurisdictionDecision], TicketChange]:
        held = ticket.routing.jurisdiction
        if held is None or not ticket.held_for_review():
            state = "no jurisdiction decision" if held is None else f"{held.outcome} by {held.decided_by}"
            raise ReviewRefused("not_under_review", f"ticket {ticket_id} is not waiting for review ({state})")
        decision = JurisdictionDecision(
            outcome=settlement.outcome, rule_id=held.rule_id, evidence=held.evidence, reason=settlement.reason,
            competent_authority=settlement.competent_authority if settlement.outcome == "return" else None,
            return_reason_code=settlement.return_reason_code.value if settlement.outcome == "return" else None,
            decided_at=at, decided_by=actor[:100])
        settled = with_jurisdiction(ticket, decision)
        outbox: list[OutboxEntry]
        if ticket.sender_updates.held_versions():
            change = settled_version(intake, ticket, settled, settlement, actor=actor, at=at)
            return (change.ticket, decision), change
        if settlement.outcome == "accept":
            settled, _, outbox = intake.router.intake_outbox(settled)
        else:
            settled = settled.model_copy(update={
                "lifecycle": settled.lifecycle.model_copy(update={"status": Status.RETURNED})})
            callback = intake.returned_callback(ticket.source.adapter_id, returned_by(ticket, decision))
            # A stored ticket's 退单 is its status RETURNED: the sender's echo follows it as any status callback.
            outbox = [] if callback is None else [dataclasses.replace(callback, reports=ReportedStatus(
                sequence=settled.lifecycle.last_sequence, status=Status.RETURNED.value))]
        return (settled, decision), TicketChange(settled, outbox)

    # Two operators settling at once: the second reads the settled ticket again and is refused (not under review).
    update = await update_ticket(intake.store, ticket_id, settle)
    if update is None:
        raise ReviewRefused("not_found", f"no ticket {ticket_id}")
    settled, decision = update.verdict
    log.info("jurisdiction review settled", extra={"ticket_id": ticket_id, "adapter_id": settled.source.adapter_id,
                                                   "outcome": settlement.outcome, "actor": actor})
    return Settled(settled, decision, update.delivery_ids)


def settled_version(intake: IntakeService, read: Ticket, settled: Ticket, settlement: Settlement, *, actor: str,
                    at: datetime) -> TicketChange:
    """A forwarded ticket whose later version was held (it screened as not ours): accept → the update the version
    held goes to the national platform (the ticket as it now stands); return → the partner hears the 退单 and the
    national registration is withdrawn with the operator's reason (the platform's WITHDRAWN moves the lifecycle)."""
    updates = settled.sender_updates
    versions = [v.model_copy(update={"held": False}) if v.held else v for v in updates.versions]
    released = settled.model_copy(update={"sender_updates": updates.model_copy(update={"versions": versions})})
    version = read.source.source_version
    follow_ups = intake.follow_ups
    if settlement.outcome == "accept":
        assert released.idempotency_key is not None
        return follow_ups.national_change(read, released, "update", released.idempotency_key, at=at, version=version)
    key = follow_up_key("withdrawal", read.source.source_system, read.source.source_ticket_no,
                        f"returned:{version}")
    withdrawal = Withdrawal(key=key, at=at, received_at=at, text=settlement.reason, requested_by=actor[:100])
    withdrawn = released.model_copy(update={"sender_updates": released.sender_updates.model_copy(update={
        "withdrawal": withdrawal})})
    change = follow_ups.national_change(read, withdrawn, "withdraw", key, at=at, text=settlement.reason)
    decision = settled.routing.jurisdiction
    assert decision is not None
    callback = intake.returned_callback(read.source.adapter_id, returned_by(read, decision))
    return TicketChange(change.ticket, [*change.outbox, *([] if callback is None else [callback])])
