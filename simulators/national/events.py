"""Status events the platform issues: on demand or on a timer, signed (Standard Webhooks) and sent with retries."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Coroutine
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

import httpx
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from ulid import ULID

from adapters.wire.webhooks import WebhookSigner
from contracts.codesets import BusinessType, NotAcceptedReason, Status
from contracts.identifiers import IdentifierError, lookup_region
from contracts.status import TRANSITIONS, CaseResult, DeadlineKind, FollowUp, StatusEvent
from simulators.national.config import SimulatorConfig
from simulators.national.registry import AttemptRecord, EventRecord, NationalState, RegisteredTicket, now_cst

log = logging.getLogger(__name__)

# The path a ticket walks in --auto-advance mode, by business type.
LIFECYCLES: dict[BusinessType, tuple[Status, ...]] = {
    BusinessType.ENQUIRY: (Status.CLOSED,),
    BusinessType.COMPLAINT: (Status.ACCEPTED, Status.MEDIATING, Status.MEDIATED, Status.CLOSED),
    BusinessType.REPORT: (Status.ACCEPTED, Status.FILED, Status.CLOSED),
}
RETRYABLE_STATUS = frozenset({408, 425, 429})


class EventRequest(BaseModel):
    """Body of POST /sim/tickets/{no}/events: the status change to issue, and how to misbehave if asked."""

    model_config = ConfigDict(extra="forbid")

    status: Status
    not_accepted_reason: NotAcceptedReason | None = None
    opinion: Annotated[str, Field(max_length=4000)] | None = None
    result: CaseResult | None = None
    follow_up: FollowUp | None = None
    org: Annotated[str, Field(max_length=100)] | None = None
    actor: Annotated[str, Field(max_length=100)] | None = None
    at: AwareDatetime | None = None
    extends: DeadlineKind | None = None  # the time limit an EXTENDED event extends
    # For tests of the gateway: force a sequence (an old one makes a stale event), reuse an event id,
    # or only record the event now (deliver=false) and send it later with POST /sim/events/{id}/resend.
    sequence: Annotated[int, Field(ge=0)] | None = None
    event_id: Annotated[str, Field(min_length=1, max_length=60, pattern=r"^[0-9A-Za-z_\-]+$")] | None = None
    deliver: bool = True


def handling_org(registered: RegisteredTicket, default_region: str) -> str:
    """The market-supervision bureau of the ticket's region, as the platform would name the handler."""
    ticket = registered.ticket
    if ticket.routing.handler_org_name:
        return ticket.routing.handler_org_name
    region = (
        ticket.respondent.operating_region_code
        or ticket.occurrence.incident_region_code
        or ticket.complainant.region_code
        or default_region
    )
    try:
        return f"{lookup_region(region).name}市场监督管理局"
    except IdentifierError:
        return "全国12315平台"


def scripted_step(registered: RegisteredTicket, status: Status) -> EventRequest:
    """The opinion and result a realistic platform would attach to each step of the auto-advance path."""
    ticket = registered.ticket
    business_type = ticket.classification.business_type
    amount = ticket.subject.amount if ticket.subject.amount is not None else Decimal("299.00")
    now = now_cst()
    if status is Status.ACCEPTED:
        return EventRequest(status=status, opinion="符合受理条件，予以受理。")
    if status is Status.MEDIATING:
        return EventRequest(status=status, opinion="已联系双方当事人，组织调解。")
    if status is Status.MEDIATED:
        return EventRequest(
            status=status,
            opinion="经调解，双方达成一致。",
            result=CaseResult(
                text="经营者同意退货并退还货款。",
                mediation_agreement_no=f"TJ{registered.national_registration_no[-14:]}",
                recovered_amount=amount,
            ),
        )
    if status is Status.FILED:
        return EventRequest(status=status, opinion="经核查，举报线索属实，予以立案调查。")
    if status is Status.CLOSED and business_type is BusinessType.REPORT:
        return EventRequest(
            status=status,
            opinion="案件调查终结，依法作出行政处罚，办结。",
            result=CaseResult(
                text="当事人销售不合格商品，责令改正，没收违法所得并处罚款。",
                case_value=amount,
                penalty_amount=Decimal("5000.00"),
                confiscation_amount=amount,
                closed_at=now,
            ),
        )
    if status is Status.CLOSED and business_type is BusinessType.COMPLAINT:
        return EventRequest(
            status=status,
            opinion="调解成功，办结。",
            result=CaseResult(text="调解成功，消费者挽回经济损失。", recovered_amount=amount, closed_at=now),
        )
    if status is Status.CLOSED:
        return EventRequest(status=status, opinion="已答复咨询人，办结。",
                            result=CaseResult(text="已电话答复咨询人。", closed_at=now))
    return EventRequest(status=status)


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after", "").strip()
    return float(value) if value.isdigit() else None


class EventDispatcher:
    """Issues status events, keeps them in the state, and sends each to the gateway in order per ticket."""

    def __init__(self, config: SimulatorConfig, state: NationalState, save: Callable[[], None]) -> None:
        self.config = config
        self.state = state
        self._save = save
        self._signer = WebhookSigner(config.secrets)
        self._client: httpx.AsyncClient | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        # Its own generator, so backoff jitter never shifts the fault sequence a seed promises.
        self._rng = random.Random(None if config.seed is None else config.seed + 1)

    async def start(self) -> None:
        timeout = httpx.Timeout(self.config.event_timeout_seconds)
        self._client = httpx.AsyncClient(timeout=timeout, follow_redirects=False)
        for record in self.state.events.values():
            if record.state == "pending":  # sending was cut short by a restart
                self._spawn(self._deliver(record))
        if self.config.auto_advance_seconds is not None:
            for registered in self.state.tickets.values():
                self.schedule_lifecycle(registered)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.aclose()

    def reset(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        self._locks.clear()

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def issue(self, registered: RegisteredTicket, request: EventRequest) -> EventRecord:
        """Create, record and (unless held) send one status event; raises pydantic.ValidationError."""
        sequence = request.sequence if request.sequence is not None else registered.last_sequence + 1
        event = StatusEvent.model_validate(
            {
                "event_id": request.event_id or str(ULID()),
                "ticket_id": registered.ticket.ticket_id,
                "national_registration_no": registered.national_registration_no,
                "sequence": sequence,
                "at": request.at or now_cst(),
                "status": request.status,
                "org": request.org or handling_org(registered, self.config.region_code),
                "actor": request.actor,
                "opinion": request.opinion,
                "not_accepted_reason": request.not_accepted_reason,
                "result": request.result,
                "follow_up": request.follow_up,
                "extends": request.extends,
            }
        )
        record = EventRecord(
            webhook_id=f"msg_{event.event_id}",
            event=event,
            state="pending" if request.deliver else "held",
            transition_allowed=event.status in TRANSITIONS[registered.status],
        )
        registered.last_sequence = max(registered.last_sequence, sequence)
        if sequence > registered.status_sequence:
            registered.status, registered.status_sequence = event.status, sequence
        self.state.events[event.event_id] = record
        self.state.stats.events_created += 1
        self._save()
        if request.deliver:
            self.send(record)
        return record

    def send(self, record: EventRecord) -> None:
        """Queue the record for sending (again): the same body and webhook-id, freshly signed."""
        record.state = "pending"
        record.sends += 1
        self._spawn(self._deliver(record))

    def schedule_lifecycle(self, registered: RegisteredTicket) -> None:
        if self.config.auto_advance_seconds is not None:
            self._spawn(self._advance(registered.national_registration_no, self.config.auto_advance_seconds))

    async def _advance(self, number: str, interval: float) -> None:
        registered = self.state.tickets[number]
        path = LIFECYCLES[registered.ticket.classification.business_type]
        # After a restart (or a step made by hand) pick the path up where the ticket stands.
        start = path.index(registered.status) + 1 if registered.status in path else 0
        for status in path[start:]:
            await asyncio.sleep(interval)
            current = self.state.tickets.get(number)
            if current is None or status not in TRANSITIONS[current.status]:
                return  # reset, or moved elsewhere by hand: the script no longer applies
            self.issue(current, scripted_step(current, status))

    async def _deliver(self, record: EventRecord) -> None:
        number = record.event.national_registration_no or ""
        async with self._locks.setdefault(number, asyncio.Lock()):
            try:
                await self._deliver_in_order(record)
            except Exception:  # a bug here must not leave the event "pending" for ever
                log.exception("sending a status event failed", extra={"event_id": record.event.event_id})
                record.state = "failed"
                self.state.stats.events_failed += 1
        self._save()

    async def _deliver_in_order(self, record: EventRecord) -> None:
        url = self.config.gateway_status_url
        if url is None or self._client is None:
            record.state = "not_sent"
            return
        body = record.event.model_dump_json().encode("utf-8")
        delay = self.config.event_retry_initial_seconds
        attempt = 0
        while True:
            attempt += 1
            headers = self._signer.sign(record.webhook_id, None, body) | {"content-type": "application/json"}
            started, at = time.monotonic(), now_cst()
            retry_after: float | None = None
            try:
                response = await self._client.post(url, content=body, headers=headers)
            except httpx.HTTPError as err:
                self._attempt(record, at, started, error=f"{type(err).__name__}: {err}"[:300])
            else:
                self._attempt(record, at, started, status_code=response.status_code)
                if response.is_success:
                    record.state, record.delivered_at = "delivered", now_cst()
                    self.state.stats.events_delivered += 1
                    return
                if response.status_code not in RETRYABLE_STATUS and response.status_code < 500:
                    log.warning("gateway refused a status event", extra={
                        "event_id": record.event.event_id, "status_code": response.status_code,
                        "response": response.text[:500]})
                    break
                retry_after = _retry_after(response)
            if 0 < self.config.event_max_attempts <= attempt:
                break
            wait = min(self.config.event_retry_max_seconds, delay * self._rng.uniform(0.8, 1.2))
            if retry_after is not None:
                wait = min(max(wait, retry_after), self.config.event_retry_max_seconds)
            delay *= 2
            await asyncio.sleep(wait)
        log.warning("status event given up", extra={"event_id": record.event.event_id,
                                                     "attempts": len(record.attempts), "status": record.event.status})
        record.state = "failed"
        self.state.stats.events_failed += 1

    def _attempt(self, record: EventRecord, at: datetime, started: float, status_code: int | None = None,
                 error: str | None = None) -> None:
        self.state.stats.event_attempts += 1
        record.attempts.append(AttemptRecord(at=at, duration_ms=round((time.monotonic() - started) * 1000, 1),
                                             status_code=status_code, error=error))
