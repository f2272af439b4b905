"""The national 12315 platform simulator as a FastAPI app: ticket intake, status events and the control API."""

from __future__ import annotations

import hmac
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import FastAPI, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from adapters.wire.webhooks import WebhookSigner
from contracts.errors import FieldError, field_errors
from contracts.national_followups import FOLLOW_UPS_PATH, NationalFollowUp
from contracts.ticket import Ticket
from simulators.national.config import FaultUpdate, SimulatorConfig
from simulators.national.events import EventDispatcher, EventRequest
from simulators.national.faults import FaultController, FaultInjector
from simulators.national.followups import registered_for, take_follow_up
from simulators.national.registry import NationalState, RegisteredTicket, StateFile, now_cst

log = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"
MAX_IDEMPOTENCY_KEY = 255


@dataclass
class NationalPlatform:
    """What the routes share: configuration, state, the fault controller and the event dispatcher."""

    config: SimulatorConfig
    state: NationalState
    state_file: StateFile
    faults: FaultController
    events: EventDispatcher

    def save(self) -> None:
        self.state_file.save(self.state)


def errors_response(status: int, errors: list[FieldError], headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errors": [e.model_dump(mode="json", exclude_none=True) for e in errors]},
                        status_code=status, headers=headers)


def one_error(status: int, field: str, rule: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return errors_response(status, [FieldError(field=field, rule=rule, message=message)], headers)


def _request_errors(error: RequestValidationError) -> list[FieldError]:
    found = []
    for detail in error.errors():
        loc = [str(part) for part in detail.get("loc", ()) if part != "body"]
        found.append(FieldError(field=".".join(loc) or "(body)", rule=str(detail.get("type", "invalid")),
                                message=str(detail.get("msg", ""))))
    return found


def create_app(config: SimulatorConfig) -> FaultInjector:
    """The simulator as an ASGI app: FastAPI routes wrapped by fault injection (which must be outermost)."""
    state_file = StateFile(config.state_file)
    state = state_file.load()
    faults = FaultController(config.faults, state, config.seed)
    platform = NationalPlatform(config, state, state_file, faults,
                                EventDispatcher(config, state, lambda: state_file.save(state)))

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await platform.events.start()
        log.info("national simulator started", extra={
            "gateway_status_url": config.gateway_status_url, "auto_advance_seconds": config.auto_advance_seconds,
            "auth": "token" if config.token else "none"})
        yield
        await platform.events.stop()
        platform.save()

    api = FastAPI(
        title="National 12315 platform simulator",
        version="0.1.0",
        summary="Takes canonical tickets, issues national registration numbers and sends signed status events.",
        lifespan=lifespan,
    )
    api.state.platform = platform

    @api.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, error: RequestValidationError) -> JSONResponse:
        return errors_response(422, _request_errors(error))

    def unauthorized(request: Request) -> JSONResponse | None:
        if config.token is None:
            return None
        offered = request.headers.get(config.api_key_header, "")
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            offered = credentials.strip()
        if offered and hmac.compare_digest(offered.encode(), config.token.encode()):
            return None
        state.stats.unauthorized += 1
        return one_error(401, "Authorization", "authentication_required",
                         f"send 'Authorization: Bearer <token>' or '{config.api_key_header}: <token>'",
                         {"WWW-Authenticate": 'Bearer realm="national-12315"'})

    @api.get("/healthz", tags=["health"])
    async def healthz() -> dict[str, str]:
        """The simulator is up."""
        return {"status": "ok"}

    @api.post("/api/v1/tickets", tags=["national"], response_model=None)
    async def submit_ticket(request: Request) -> JSONResponse:
        """Register a canonical ticket; the same idempotency key always gets the same number (201, then 200)."""
        if (refusal := unauthorized(request)) is not None:
            return refusal
        state.stats.submissions += 1
        try:
            data: Any = json.loads(await request.body())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            state.stats.rejected += 1
            return one_error(422, "(body)", "invalid_json", f"the body is not JSON: {err}")
        try:
            ticket = Ticket.model_validate(data)
        except ValidationError as err:
            state.stats.rejected += 1
            return errors_response(422, field_errors(err))
        header_key = request.headers.get(IDEMPOTENCY_HEADER)
        if header_key is not None and not (0 < len(header_key) <= MAX_IDEMPOTENCY_KEY and header_key.isprintable()):
            state.stats.rejected += 1
            return one_error(422, IDEMPOTENCY_HEADER, "idempotency_key_format",
                             f"1-{MAX_IDEMPOTENCY_KEY} printable characters")
        key = header_key or ticket.idempotency_key or ticket.ticket_id
        known = state.keys.get(key)
        if known is not None:
            registered = state.tickets[known]
            registered.submissions += 1
            state.stats.duplicates += 1
            platform.save()
            return JSONResponse(registered.summary(duplicate=True), status_code=200,
                                headers={"Location": f"/api/v1/tickets/{known}"})
        received = now_cst()
        region = (ticket.respondent.operating_region_code or ticket.occurrence.incident_region_code
                  or ticket.complainant.region_code or config.region_code)
        number = state.next_registration_no(region, received)
        ticket.national_registration_no = number
        registered = RegisteredTicket(national_registration_no=number, idempotency_key=key,
                                      registered_at=received, ticket=ticket, version=ticket.source.source_version)
        state.tickets[number] = registered
        state.keys[key] = number
        state.stats.accepted += 1
        platform.save()
        platform.events.schedule_lifecycle(registered)
        log.info("ticket registered", extra={"ticket_id": ticket.ticket_id, "national_registration_no": number})
        return JSONResponse(registered.summary(duplicate=False), status_code=201,
                            headers={"Location": f"/api/v1/tickets/{number}"})

    answer_signer = WebhookSigner(config.secrets)

    @api.post(f"/api/v1/tickets/{FOLLOW_UPS_PATH}", tags=["national"], response_model=None)
    async def follow_up(request: Request) -> Response:
        """An update, urge or withdrawal of a registered ticket; the answer is signed like a status event."""
        if (refusal := unauthorized(request)) is not None:
            return refusal
        try:
            body = NationalFollowUp.model_validate_json(await request.body())
        except ValidationError as err:
            state.stats.rejected += 1
            return errors_response(422, field_errors(err))
        registered = registered_for(state, body)
        if registered is None:
            return one_error(404, "registration_key", "not_registered",
                             "no ticket is registered under this key or number: register it first")
        answer = take_follow_up(state, registered, body, platform.events)
        platform.save()
        content = answer.model_dump_json(exclude_none=True).encode("utf-8")
        headers = answer_signer.sign(f"ans_{body.key[:32]}_{body.operation}", None, content)
        # The bytes signed are the bytes sent.
        return Response(content, media_type="application/json", headers=headers)

    @api.get("/api/v1/tickets", tags=["national"], response_model=None)
    async def find_tickets(request: Request, idempotency_key: str | None = None) -> JSONResponse:
        """Look a submission up by its idempotency key (or list every ticket without one)."""
        if (refusal := unauthorized(request)) is not None:
            return refusal
        if idempotency_key is None:
            found = list(state.tickets.values())
        else:
            number = state.keys.get(idempotency_key)
            found = [state.tickets[number]] if number else []
        return JSONResponse({"tickets": [r.summary() for r in found]})

    @api.get("/api/v1/tickets/{national_registration_no}", tags=["national"], response_model=None)
    async def get_ticket(request: Request, national_registration_no: str) -> JSONResponse:
        """One registered ticket with the status events issued for it."""
        if (refusal := unauthorized(request)) is not None:
            return refusal
        registered = state.tickets.get(national_registration_no)
        if registered is None:
            return one_error(404, "national_registration_no", "not_found",
                             f"no ticket is registered under {national_registration_no}")
        body = registered.summary()
        body["ticket"] = registered.ticket.model_dump(mode="json")
        body["events"] = [r.event.model_dump(mode="json") for r in state.events.values()
                          if r.event.national_registration_no == national_registration_no]
        return JSONResponse(body)

    @api.post("/sim/tickets/{national_registration_no}/events", tags=["simulator"], response_model=None)
    async def issue_event(national_registration_no: str, request_body: EventRequest) -> JSONResponse:
        """Issue a status event now (optionally with a forced sequence or id, or held back for a later resend)."""
        registered = state.tickets.get(national_registration_no)
        if registered is None:
            return one_error(404, "national_registration_no", "not_found",
                             f"no ticket is registered under {national_registration_no}")
        try:
            record = platform.events.issue(registered, request_body)
        except ValidationError as err:
            return errors_response(422, field_errors(err))
        return JSONResponse(record.model_dump(mode="json"), status_code=201)

    @api.post("/sim/events/{event_id}/resend", tags=["simulator"], response_model=None)
    async def resend_event(event_id: str) -> JSONResponse:
        """Send a recorded event again: same body and webhook-id, a deliberate duplicate (or a late one)."""
        record = state.events.get(event_id)
        if record is None:
            return one_error(404, "event_id", "not_found", f"no event {event_id} was issued")
        platform.events.send(record)
        return JSONResponse(record.model_dump(mode="json"), status_code=202)

    @api.get("/sim/events", tags=["simulator"], response_model=None)
    async def list_events(national_registration_no: str | None = None,
                          state_: Annotated[str | None, Query(alias="state")] = None) -> JSONResponse:
        """Every event issued, in order, with its delivery state and attempts."""
        records = [r for r in state.events.values()
                   if national_registration_no in (None, r.event.national_registration_no)
                   and state_ in (None, r.state)]
        return JSONResponse({"events": [r.model_dump(mode="json") for r in records]})

    @api.get("/sim/faults", tags=["simulator"])
    async def get_faults() -> dict[str, object]:
        """The fault plan in force."""
        return faults.describe()

    @api.post("/sim/faults", tags=["simulator"], response_model=None)
    async def set_faults(change: FaultUpdate) -> JSONResponse:
        """Change the fault plan; only the fields given change."""
        try:
            faults.update(change)
        except ValidationError as err:
            return errors_response(422, field_errors(err))
        log.info("fault plan changed", extra={"faults": faults.describe()})
        return JSONResponse(faults.describe())

    @api.delete("/sim/faults", tags=["simulator"])
    async def clear_faults() -> dict[str, object]:
        """No faults from now on."""
        faults.reset()
        return faults.describe()

    @api.get("/sim/stats", tags=["simulator"])
    async def stats() -> dict[str, object]:
        """Submissions, unique idempotency keys, duplicates, faults served by kind, events."""
        return state.summary_stats()

    @api.post("/sim/reset", tags=["simulator"])
    async def reset() -> dict[str, str]:
        """Forget all tickets, events and counters, and stop pending sends; the fault plan is kept."""
        platform.events.reset()
        state.clear()
        platform.save()
        return {"status": "reset"}

    return FaultInjector(api, faults)
