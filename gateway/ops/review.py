"""Operators and jurisdiction reviews: the tickets held for review, and settling one (operator role, audited).
The decision itself is the ticket domain's (gateway/tickets/review.py); this adds the role, the audit and the wake."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from contracts.ticket import JurisdictionDecision
from gateway.ops.access import OpsUser, Role
from gateway.ops.errors import OpsError, require
from gateway.ops.schemas import TicketSummary
from gateway.ops.service import OpsService
from gateway.store.base import TicketQuery
from gateway.tickets.review import ReviewRefused, Settlement, settle_review

AUDIT_ACTION = "jurisdiction.review"


class ReviewView(BaseModel):
    """A ticket held for review and why the screen could not decide."""

    ticket: TicketSummary
    jurisdiction: JurisdictionDecision


class ReviewResult(BaseModel):
    """What settling did: the decision recorded, the deliveries enqueued (national and routed, or the 退单)."""

    ticket_id: str
    outcome: Literal["accept", "return"]
    status: str
    jurisdiction: JurisdictionDecision
    delivery_ids: list[str]
    audit_id: str


async def pending_reviews(service: OpsService, user: OpsUser, limit: int = 100) -> list[ReviewView]:
    """Tickets waiting for an operator's jurisdiction decision, newest first."""
    return [ReviewView(ticket=service.summary(ticket, user), jurisdiction=ticket.routing.jurisdiction)
            for ticket in await service.store.search_tickets(TicketQuery(held="review", limit=limit))
            if ticket.routing.jurisdiction is not None]


async def settle(service: OpsService, ticket_id: str, settlement: Settlement, user: OpsUser) -> ReviewResult:
    """Accept or return a held ticket; refused (404/409) when there is none or it is not waiting for review."""
    require(user, Role.OPERATOR, "settling a jurisdiction review")
    detail: dict[str, object] = {"outcome": settlement.outcome, "reason": settlement.reason,
                                 "competent_authority": settlement.competent_authority}
    try:
        settled = await settle_review(service.runtime.intake, ticket_id, settlement, actor=user.id)
    except ReviewRefused as err:
        await service.record(user, AUDIT_ACTION, [ticket_id], {**detail, "error": str(err)}, outcome=err.code)
        zh = (f"找不到工单 {ticket_id}" if err.code == "not_found"
              else f"工单 {ticket_id} 不在待判定状态（可能已由他人处理）")
        raise OpsError(404 if err.code == "not_found" else 409, err.code, str(err), zh=zh, field="ticket_id") from err
    audit_id = await service.record(user, AUDIT_ACTION, [ticket_id],
                                    {**detail, "rule_id": settled.decision.rule_id,
                                     "delivery_ids": list(settled.delivery_ids)})
    engine = service.runtime.engine
    if engine is not None:
        engine.wake()
    return ReviewResult(ticket_id=ticket_id, outcome=settlement.outcome, status=settled.ticket.lifecycle.status.value,
                        jurisdiction=settled.decision, delivery_ids=list(settled.delivery_ids), audit_id=audit_id)
