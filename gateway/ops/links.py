"""Operators and duplicate links: confirming or dismissing the link between two tickets (operator role, audited).
The decision itself is the ticket domain's (gateway/tickets/links.py); this adds the role and the audit."""

from __future__ import annotations

from pydantic import BaseModel

from contracts.ticket import TicketLink
from gateway.ops.access import OpsUser, Role
from gateway.ops.errors import OpsError, require
from gateway.ops.service import OpsService
from gateway.tickets.links import LinkDecision, LinkRefused, decide_link

AUDIT_ACTIONS = {"confirm": "link.confirm", "dismiss": "link.dismiss"}


class LinkResult(BaseModel):
    """The link as it now stands on the ticket, and on the linked ticket (None if it shows no link back)."""

    ticket_id: str
    linked_ticket_id: str
    link: TicketLink
    back: TicketLink | None
    audit_id: str


async def decide(service: OpsService, ticket_id: str, linked_ticket_id: str, decision: LinkDecision,
                 user: OpsUser) -> LinkResult:
    """Confirm or dismiss a link on both tickets; 404 when the ticket does not exist or has no such link."""
    require(user, Role.OPERATOR, "confirming or dismissing a duplicate link")
    action = AUDIT_ACTIONS[decision.decision]
    detail: dict[str, object] = {"linked_ticket_id": linked_ticket_id, "note": decision.note}
    try:
        decided = await decide_link(service.store, ticket_id, linked_ticket_id, decision, actor=user.id)
    except LinkRefused as err:
        await service.record(user, action, [ticket_id], {**detail, "error": str(err)}, outcome="not_found")
        raise OpsError(404, "not_found", str(err), zh=f"工单 {ticket_id} 与 {linked_ticket_id} 之间没有疑似重复关联",
                       field="linked_ticket_id") from err
    audit_id = await service.record(user, action, [ticket_id, linked_ticket_id],
                                    {**detail, "score": decided.link.score})
    return LinkResult(ticket_id=ticket_id, linked_ticket_id=linked_ticket_id, link=decided.link, back=decided.back,
                      audit_id=audit_id)
