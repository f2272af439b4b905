"""Intake: a partner's payload becomes a stored canonical ticket with its deliveries, or is kept in quarantine."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from adapters.base import Adapter
from adapters.canonical import canonical_ticket
from adapters.config import AdapterConfig
from contracts.base import CHINA_STANDARD_TIME
from contracts.errors import FieldError
from contracts.ticket import Ticket
from gateway.errors import GatewayError
from gateway.store.base import Store
from gateway.tickets.deadlines import RuleBook, WorkingDayCalendar, compute_deadlines
from gateway.tickets.routing import Router, RuleReturn
from gateway.tickets.writeback import partner_writeback
from mapping.engine import Mapped, MappingResult, Rejected, Returned, apply
from mapping.spec import MappingSpec

log = logging.getLogger(__name__)

Enricher = Callable[[Ticket], Awaitable[Ticket]]


@dataclass(frozen=True)
class IntakeOutcome:
    """What became of one payload; every kind but `created`/`repeat` leaves the raw payload in quarantine."""

    kind: Literal["created", "repeat", "quarantined", "returned"]
    ticket_id: str | None = None
    quarantine_id: str | None = None
    errors: tuple[FieldError, ...] = ()
    warnings: tuple[FieldError, ...] = ()
    returned: Returned | None = None

    @property
    def stored(self) -> bool:
        return self.kind in ("created", "repeat")


# adapter id, outcome kind ("created", "repeat", "quarantined", "returned" or "error"), seconds, the outcome
IntakeListener = Callable[[str, str, float, IntakeOutcome | None], None]


class UnknownAdapter(GatewayError, LookupError):
    """No mapping spec is configured for this adapter id."""


class IntakeService:
    """Map, route, set deadlines, and store ticket + raw payload + outbox in one step."""

    def __init__(self, store: Store, specs: Mapping[str, MappingSpec], router: Router, rules: RuleBook,
                 calendar: WorkingDayCalendar, *, canonical: Mapping[str, AdapterConfig] | None = None,
                 callbacks: Mapping[str, Adapter] | None = None, enrich: Enricher | None = None) -> None:
        self.store = store
        self.specs = specs
        self.canonical = dict(canonical or {})  # adapters taking tickets already in the national standard
        self.callbacks = dict(callbacks or {})  # adapters whose partner hears a 退单 through its callback lane
        self.listeners: list[IntakeListener] = []  # told of every outcome (metrics, the ops chart)
        self.router = router
        self.rules = rules
        self.calendar = calendar
        self.enrich = enrich

    def knows(self, adapter_id: str) -> bool:
        return adapter_id in self.canonical or adapter_id in self.specs

    def map(self, adapter_id: str, payload: object) -> MappingResult:
        """The mapping alone (pure): what intake would make of this payload."""
        if adapter_id in self.canonical:
            return canonical_ticket(payload, self.canonical[adapter_id])
        spec = self.specs.get(adapter_id)
        if spec is None:
            raise UnknownAdapter(adapter_id)
        return apply(spec, payload)

    async def accept(self, adapter_id: str, payload: object, *, raw_body: bytes, content_type: str) -> IntakeOutcome:
        """Take one payload. The outcome is only returned once whatever it says is durably stored."""
        started = time.perf_counter()
        try:
            outcome = await self._accept(adapter_id, payload, raw_body=raw_body, content_type=content_type)
        except Exception:
            self._tell(adapter_id, "error", started, None)
            raise
        self._tell(adapter_id, outcome.kind, started, outcome)
        return outcome

    def _tell(self, adapter_id: str, kind: str, started: float, outcome: IntakeOutcome | None) -> None:
        for listener in self.listeners:
            try:
                listener(adapter_id, kind, time.perf_counter() - started, outcome)
            except Exception:
                log.exception("intake listener failed", extra={"adapter_id": adapter_id})

    async def _accept(self, adapter_id: str, payload: object, *, raw_body: bytes, content_type: str) -> IntakeOutcome:
        result = self.map(adapter_id, payload)
        if isinstance(result, Rejected):
            quarantine_id = await self.store.quarantine(adapter_id, raw_body, content_type, list(result.errors))
            log.info("ticket quarantined", extra={"adapter_id": adapter_id, "quarantine_id": quarantine_id,
                                                  "rules": sorted({e.rule for e in result.errors})})
            return IntakeOutcome("quarantined", quarantine_id=quarantine_id, errors=result.errors,
                                 warnings=result.warnings)
        if isinstance(result, Returned):
            return await self._send_back(adapter_id, result, raw_body=raw_body, content_type=content_type)
        return await self.store_ticket(result, raw_body=raw_body, content_type=content_type)

    async def _send_back(self, adapter_id: str, result: Returned, *, raw_body: bytes, content_type: str,
                         rule: RuleReturn | None = None) -> IntakeOutcome:
        """退单: the partner hears it through its callback lane, the payload is kept, the push is answered returned."""
        # The 退单 callback is enqueued first: should the quarantine write fail, the partner sends again,
        # and the callback's key (its ticket number) makes the second one a repeat it drops.
        await self._tell_returned(adapter_id, result)
        said = result.reason if rule is None else f"{result.reason} (routing rule {rule.rule_id})"
        note = FieldError(field="(ticket)", rule=f"returned:{result.reason_code}", message=said)
        quarantine_id = await self.store.quarantine(adapter_id, raw_body, content_type, [note])
        log.info("ticket returned to sender", extra={
            "adapter_id": adapter_id, "quarantine_id": quarantine_id, "reason_code": str(result.reason_code),
            "rule_id": rule.rule_id if rule else None,
            "evidence": [e.model_dump() for e in rule.evidence] if rule else None})
        return IntakeOutcome("returned", quarantine_id=quarantine_id, returned=result)

    async def _tell_returned(self, adapter_id: str, returned: Returned) -> None:
        """Send a 退单 back through the partner's callback lane, in its own codes, when it has one."""
        entry = partner_writeback(self.callbacks.get(adapter_id), self.specs.get(adapter_id), returned,
                                  at=datetime.now(CHINA_STANDARD_TIME))
        if entry is not None and entry.idempotency_key is not None:  # a write-back always has its own key
            await self.store.enqueue(entry.idempotency_key, entry.idempotency_key, [entry])

    async def store_ticket(self, mapped: Mapped, *, raw_body: bytes, content_type: str) -> IntakeOutcome:
        """Set handler and deadlines, enrich, route a mapped ticket, then store it with its outbox; or send it
        back when a routing rule says so."""
        ticket = self.prepare(mapped.ticket)
        if self.enrich is not None:
            ticket = await self.enrich(ticket)  # before the rules: they read the respondent's credit flags
        sent_back = self.router.returned(ticket)
        if sent_back is not None:
            return await self._send_back(ticket.source.adapter_id, sent_back.returned, raw_body=raw_body,
                                         content_type=content_type, rule=sent_back)
        ticket, routed = self.router.intake_routes(ticket)  # the ticket records each route's rule and evidence
        ticket_json = ticket.model_dump_json()  # stored, and forwarded as it is
        outbox = [self.router.forward_entry(ticket, ticket_json.encode("utf-8")), *routed]
        outcome = await self.store.intake(ticket, raw_body, content_type, outbox, ticket_json=ticket_json)
        log.info("ticket stored" if outcome.created else "ticket repeated",
                 extra={"ticket_id": outcome.ticket_id, "adapter_id": ticket.source.adapter_id})
        return IntakeOutcome("created" if outcome.created else "repeat", ticket_id=outcome.ticket_id,
                             warnings=mapped.warnings)

    def prepare(self, ticket: Ticket) -> Ticket:
        """The handling organisation and statutory deadlines, from the ticket's own facts."""
        ticket = self.router.assign_handler(ticket)
        deadlines = compute_deadlines(ticket.classification.business_type.value,
                                      ticket.source.source_received_at, None, self.rules, self.calendar)
        return ticket.model_copy(update={"routing": ticket.routing.model_copy(update={"deadlines": deadlines})})
