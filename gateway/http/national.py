"""POST /api/v1/national/status: the national platform reports a status change, signed (Standard Webhooks)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from adapters.wire.webhooks import WebhookVerificationError
from contracts.errors import field_errors
from contracts.status import StatusEvent
from gateway.http.deps import National, Status
from gateway.http.limits import HttpRefusal, read_limited, refusal_response
from gateway.tickets.lifecycle import EventOutcome
from gateway.tickets.status import TicketNotFound

log = logging.getLogger(__name__)

NATIONAL_STATUS_PATH = "/api/v1/national/status"
EARLY_RETRY_SECONDS = 5
_STATUS_OF_OUTCOME = {
    EventOutcome.APPLIED: 200,
    EventOutcome.DUPLICATE: 200,  # acknowledged: the platform must stop resending it
    EventOutcome.STALE: 200,
    EventOutcome.EARLY: 425,  # Too Early: the event it follows has not arrived; retry after a while
    EventOutcome.ILLEGAL: 409,
}


def national_status_router() -> APIRouter:
    """The status intake route; app.state.national holds the secrets shared with the national platform."""
    router = APIRouter(tags=["national platform"])

    @router.post(
        NATIONAL_STATUS_PATH,
        summary="The national platform reports a status change of a ticket",
        response_model=None,
        # The route reads the raw body itself (the signature is over its bytes), so the body is declared here.
        openapi_extra={"requestBody": {"required": True, "description": "A status event in the national schema "
                                       "(contracts/schema), signed with the Standard Webhooks headers", "content": {
                                           "application/json": {"schema": {"type": "object"}}}},
                       "parameters": [{"name": name, "in": "header", "required": False, "schema": {"type": "string"}}
                                      for name in ("webhook-id", "webhook-timestamp", "webhook-signature")]},
        responses={200: {"description": "applied, a duplicate or stale event (acknowledged: do not resend)"},
                   401: {"description": "missing or bad signature"}, 404: {"description": "unknown ticket"},
                   409: {"description": "illegal transition (recorded on the ticket)"},
                   413: {"description": "body too large"}, 422: {"description": "not a valid status event"},
                   425: {"description": "an earlier event is missing; retry after Retry-After seconds"}},
    )
    async def receive_status(request: Request, national: National, status: Status) -> JSONResponse:
        try:
            body = await read_limited(request, national.max_body_bytes)
        except HttpRefusal as refusal:
            return refusal_response(refusal)
        try:
            national.verifier.verify(request.headers, body)
        except WebhookVerificationError as err:
            log.warning("status event signature refused", extra={"reason": err.message_en})
            return refusal_response(HttpRefusal(401, "unauthorized", err.message_en, zh=err.message))
        try:
            event = StatusEvent.model_validate_json(body)
        except ValidationError as err:
            errors = [e.reader_json() for e in field_errors(err)]
            return refusal_response(HttpRefusal(422, "invalid_event", "not a valid status event",
                                                zh="状态事件不符合全国标准"), errors=errors)
        try:
            outcome = await status.apply(event)
        except TicketNotFound as err:
            return refusal_response(HttpRefusal(404, "unknown_ticket", f"no ticket {err}", zh=f"没有工单 {err}"))
        decision = outcome.decision
        doc: dict[str, Any] = {
            "outcome": str(decision.outcome),
            "ticket_id": decision.ticket.ticket_id,
            "status": str(decision.ticket.lifecycle.status),
        }
        headers = {}
        if decision.reason:
            doc.update(message=decision.reason_zh, message_en=decision.reason)
        if decision.outcome is EventOutcome.EARLY:
            headers["Retry-After"] = str(EARLY_RETRY_SECONDS)
        return JSONResponse(doc, status_code=_STATUS_OF_OUTCOME[decision.outcome], headers=headers)

    return router
