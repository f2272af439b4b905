"""The ops API under /api/v1: tickets and their links, deliveries, replay, quarantine, re-map, reload, audit."""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException

from contracts.delivery import DeliveryReceipt
from contracts.error_words import chinese_message
from gateway.ops.deps import Admin, Operator, Service, Viewer
from gateway.ops.errors import OpsError
from gateway.ops.links import LinkResult, decide
from gateway.ops.metrics import CONTENT_TYPE
from gateway.ops.on_time import OnTimeReport
from gateway.ops.review import ReviewResult, ReviewView, pending_reviews, settle
from gateway.ops.schemas import (
    AlertSearch,
    AlertView,
    AuditSearch,
    AuditView,
    BehindTicket,
    DeliverySearch,
    EchoSearch,
    OnTimeSearch,
    QuarantineSearch,
    QuarantineView,
    ReloadResult,
    RemapResult,
    ReplayRequest,
    ReplayResult,
    TicketDetail,
    TicketSearch,
    TicketSummary,
)
from gateway.tickets.links import LinkDecision
from gateway.tickets.review import Settlement


def _dotted(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("query", "body", "path")]
    return ".".join(parts) or "(request)"


def _encodable(text: str) -> str:
    """Text that can be written as UTF-8: a JSON body read by FastAPI may hold lone surrogates ("\\ud800")."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def validation_errors(err: RequestValidationError) -> list[dict[str, Any]]:
    found = []
    for e in err.errors():
        value = e.get("input")
        if isinstance(value, str):
            value = _encodable(value)
        field, rule, message = _encodable(_dotted(tuple(e.get("loc", ())))), e.get("type", "invalid"), \
            _encodable(str(e.get("msg", "")))
        found.append({"field": field, "rule": rule, "message": chinese_message(field, rule, message),
                      "message_en": message,
                      "value": value if isinstance(value, str | int | bool) or value is None
                      or (isinstance(value, float) and math.isfinite(value)) else None})  # NaN is not JSON
    return found


class OpsRoute(APIRoute):
    """Refusals as JSON naming the field: OpsError and request validation alike, dependencies included."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except OpsError as err:
                return JSONResponse(err.body(), status_code=err.status, headers=err.headers)
            except RequestValidationError as err:
                errors = validation_errors(err)
                first = errors[0]["field"] if errors else None
                body = OpsError(422, "invalid_request", "the request has invalid fields", zh="请求中有不合规的字段",
                                field=first, errors=errors).body()
                return JSONResponse(jsonable_encoder(body), status_code=422)
            except HTTPException as err:  # FastAPI's own refusal of a body it cannot parse (a Starlette one)
                if err.status_code != 400:
                    raise
                refused = OpsError(400, "invalid_body", "the body is not JSON", zh="请求体不是 JSON", field="(body)")
                return JSONResponse(refused.body(), status_code=400)

        return handle


def _refusal(description: str) -> dict[str, Any]:
    """An OpsError answer in the OpenAPI document: `{"error", "message", "field"?, "errors"?}`."""
    return {"description": description, "content": {"application/json": {"schema": {
        "type": "object", "required": ["error", "message"],
        "properties": {"error": {"type": "string"}, "message": {"type": "string"}, "field": {"type": "string"},
                       "errors": {"type": "array", "items": {"type": "object"}}}}}}}


# Every ops route may refuse these; the routes that look one thing up add 404.
_REFUSALS: dict[int | str, dict[str, Any]] = {
    400: _refusal("The body is not JSON"),
    401: _refusal("No valid ops token: Authorization: Bearer <token>"),
    403: _refusal("The user's role may not do this"),
    408: _refusal("The body did not arrive within server.body_timeout_seconds"),
    413: _refusal("The body exceeds server.max_body_bytes"),
    422: _refusal("Invalid fields, each named"),
    429: _refusal("Too many failed sign-ins from this address: wait Retry-After seconds"),
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {404: _refusal("No such ticket, delivery or quarantined payload")}


def ops_api_router() -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["ops"], route_class=OpsRoute, responses=_REFUSALS)

    @router.get("/tickets", response_model=list[TicketSummary])
    async def search_tickets(search: Annotated[TicketSearch, Query()], user: Viewer,
                             service: Service) -> list[TicketSummary]:
        """Find tickets by source or national number, complainant phone, respondent USCC or name, status,
        adapter, time received by the gateway, or deadline risk (overdue, due_soon, at_risk); newest first."""
        return await service.search(search, user)

    @router.get("/tickets/{ticket_id}", response_model=TicketDetail, responses=_NOT_FOUND)
    async def get_ticket(ticket_id: str, user: Viewer, service: Service) -> TicketDetail:
        """One ticket with its status events, deliveries and their attempts, ops actions and a timeline."""
        return await service.ticket_detail(ticket_id, user)

    @router.get("/echo/behind", response_model=list[BehindTicket])
    async def echo_behind(search: Annotated[EchoSearch, Query()], user: Viewer,
                          service: Service) -> list[BehindTicket]:
        """The sender's echo (事事有回音): tickets whose originating partner has not heard their latest status (no
        delivered callback) for longer than echo.behind_after_seconds, longest behind first, each with the callback
        it waits for and that callback's last error."""
        return await service.behind(search, user)

    @router.get("/tickets/{ticket_id}/raw", response_class=Response, responses={
        **_NOT_FOUND, 200: {"content": {"application/octet-stream": {}}, "description": "the payload as received"}})
    async def raw_payload(ticket_id: str, user: Operator, service: Service,
                          version: Annotated[str | None, Query(max_length=32)] = None) -> Response:
        """The raw payload a version of the ticket was taken from, byte for byte (operator; audited). Without
        `version`, the first; every later version (a new version or 补充材料) keeps its own."""
        body, content_type = await service.raw_payload(ticket_id, version, user)
        return Response(body, media_type=content_type)

    @router.get("/reviews", response_model=list[ReviewView])
    async def reviews(user: Viewer, service: Service,
                      limit: Annotated[int, Query(ge=1, le=500)] = 100) -> list[ReviewView]:
        """Tickets held by the jurisdiction screen for an operator's decision, with the rule and evidence."""
        return await pending_reviews(service, user, limit)

    @router.post("/tickets/{ticket_id}/jurisdiction", response_model=ReviewResult,
                 responses={**_NOT_FOUND, 409: _refusal("The ticket is not waiting for a jurisdiction review")})
    async def settle_jurisdiction(ticket_id: str, settlement: Settlement, user: Operator,
                                  service: Service) -> ReviewResult:
        """Settle a review (operator): accept → forwarded and routed as a normal ticket; return → 退单 to the
        partner with the reason and the competent authority."""
        return await settle(service, ticket_id, settlement, user)

    @router.post("/tickets/{ticket_id}/links/{linked_ticket_id}", response_model=LinkResult,
                 responses={404: _refusal("No such ticket, or it has no link to the other")})
    async def decide_link(ticket_id: str, linked_ticket_id: str, decision: LinkDecision, user: Operator,
                          service: Service) -> LinkResult:
        """Confirm (one matter) or dismiss (not a duplicate) the link between two tickets (operator); both tickets
        show the decision, who made it and when; audited."""
        return await decide(service, ticket_id, linked_ticket_id, decision, user)

    @router.get("/deliveries", response_model=list[DeliveryReceipt])
    async def list_deliveries(search: Annotated[DeliverySearch, Query()], user: Viewer,
                              service: Service) -> list[DeliveryReceipt]:
        """Deliveries by state (e.g. dead), destination, error class, ticket and creation time; oldest first."""
        return await service.deliveries(search, user)

    @router.post("/deliveries/replay", response_model=ReplayResult, responses=_NOT_FOUND)
    async def replay(request_body: ReplayRequest, user: Operator, service: Service) -> ReplayResult:
        """Put dead deliveries back on their lanes, by id or by filter; `dry_run` only lists them (operator)."""
        return await service.replay(request_body, user)

    @router.get("/quarantine", response_model=list[QuarantineView])
    async def list_quarantine(search: Annotated[QuarantineSearch, Query()], user: Viewer,
                              service: Service) -> list[QuarantineView]:
        """Payloads that could not be mapped, newest first, with the errors naming each field."""
        return await service.quarantine(search, user)

    @router.post("/quarantine/{quarantine_id}/remap", response_model=RemapResult,
                 responses={**_NOT_FOUND, 422: {"model": RemapResult}})
    async def remap(quarantine_id: str, user: Operator, service: Service) -> Response:
        """Map a quarantined payload again with its adapter's current spec and take it as a push is taken (the
        jurisdiction screen included): stored (`created`, or `review` held for an operator), it resolves the
        entry; `returned` sent the partner its 退单 and closed the entry with it (`already_returned` when it held
        one already: nothing is sent again); `still_rejected` (422) names the failing fields."""
        result = await service.remap(quarantine_id, user)
        status = 422 if result.outcome == "still_rejected" else 200
        return JSONResponse(jsonable_encoder(result), status_code=status)

    @router.post("/admin/reload", response_model=ReloadResult)
    async def reload(user: Admin, service: Service) -> ReloadResult:
        """Re-read adapters, mapping specs, routing, deadline rules, calendar and ops users (admin)."""
        return await service.reload(user)

    @router.get("/alerts", response_model=list[AlertView])
    async def alerts(search: Annotated[AlertSearch, Query()], user: Viewer, service: Service) -> list[AlertView]:
        """Alerts firing now (state=firing), or all of them, resolved too (state=all); most recently updated
        first. Each is one condition (rule and subject) with its count; `owed`: channels still to be told."""
        return await service.alerts(search)

    @router.get("/audit", response_model=list[AuditView])
    async def audit(search: Annotated[AuditSearch, Query()], user: Admin, service: Service) -> list[AuditView]:
        """Operator actions: who did what, when, to which tickets (admin)."""
        return await service.audit(search, user)

    @router.get("/ops/on-time", response_model=OnTimeReport)
    async def on_time(search: Annotated[OnTimeSearch, Query()], user: Viewer, service: Service) -> OnTimeReport:
        """办理时效: the statutory time limits that ended from `since` to `until` (days, China time), met and missed,
        per handling organisation and per limit."""
        return await service.on_time(search)

    @router.get("/ops/overview")
    async def overview(user: Viewer, service: Service) -> dict[str, Any]:
        """What the dashboard shows, as JSON: per adapter and destination counts, circuit states, risks."""
        board = await service.dashboard(user)
        data = asdict(board)
        data.pop("chart")
        data["chart"] = {"starts": board.chart.starts, "values": board.chart.values}
        encoded: dict[str, Any] = jsonable_encoder(data)
        return encoded

    return router


async def metrics_endpoint(service: Service) -> Response:
    """Prometheus exposition of this app's own registry; gauges are read from the store at each scrape."""
    await service.refresh_metrics()
    return Response(service.metrics.exposition(), media_type=CONTENT_TYPE)


def metrics_router() -> APIRouter:
    router = APIRouter(tags=["health"])
    router.add_api_route("/metrics", metrics_endpoint, methods=["GET"], include_in_schema=True,
                         response_class=Response, summary="Prometheus metrics")
    return router
