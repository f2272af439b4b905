"""Intake: a partner's payload becomes a stored canonical ticket with its deliveries, or is kept in quarantine."""

from __future__ import annotations

import functools
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
from contracts.codesets import NotAcceptedReason
from contracts.delivery import OutboxEntry
from contracts.errors import FieldError
from contracts.followups import FollowUpNotice
from contracts.national_followups import registration_key
from contracts.ticket import JurisdictionDecision, Ticket
from gateway.errors import GatewayError
from gateway.store.base import RETURNED_NOTE, LinkCandidate, LinkQuery, Relinked, Store, UnknownTicket
from gateway.tickets.deadlines import RuleBook, WorkingDayCalendar, compute_deadlines, with_deadlines
from gateway.tickets.followups import FollowUpResult, FollowUps, FollowUpSaid, known_ticket
from gateway.tickets.jurisdiction import JurisdictionRules, screen
from gateway.tickets.links import Linker
from gateway.tickets.routing import Router, RuleReturn
from gateway.tickets.writeback import partner_writeback
from mapping.engine import Mapped, MappingResult, Noticed, Rejected, Returned, apply
from mapping.spec import MappingSpec

log = logging.getLogger(__name__)

Enricher = Callable[[Ticket], Awaitable[Ticket]]


@dataclass(frozen=True)
class IntakeOutcome:
    """What became of one payload: `created`/`repeat` stored and sent on, `updated` a known ticket changed by a
    follow-up (a new version, supplement, urge or withdrawal), `review` stored and held for an operator (the
    jurisdiction screen could not decide), `quarantined`/`returned` kept as a raw payload in quarantine."""

    kind: Literal["created", "repeat", "updated", "quarantined", "returned", "review"]
    ticket_id: str | None = None
    quarantine_id: str | None = None
    errors: tuple[FieldError, ...] = ()
    warnings: tuple[FieldError, ...] = ()
    returned: Returned | None = None
    decision: JurisdictionDecision | None = None  # the jurisdiction screen's, when it ran
    follow_up: FollowUpSaid | None = None  # what a follow-up of a known ticket said (`updated`, or its `repeat`)

    @property
    def stored(self) -> bool:
        return self.kind in ("created", "repeat", "updated", "review")


# adapter id, outcome kind ("created", "repeat", "review", "quarantined", "returned" or "error"), seconds, the outcome
IntakeListener = Callable[[str, str, float, IntakeOutcome | None], None]


class UnknownAdapter(GatewayError, LookupError):
    """No mapping spec is configured for this adapter id."""


class IntakeService:
    """Map, screen jurisdiction, route, set deadlines, link possible duplicates, and store ticket + raw payload +
    outbox in one step."""

    def __init__(self, store: Store, specs: Mapping[str, MappingSpec], router: Router, rules: RuleBook,
                 calendar: WorkingDayCalendar, *, canonical: Mapping[str, AdapterConfig] | None = None,
                 callbacks: Mapping[str, Adapter] | None = None, enrich: Enricher | None = None,
                 jurisdiction: JurisdictionRules | None = None, linker: Linker | None = None) -> None:
        self.store = store
        self.specs = specs
        self.canonical = dict(canonical or {})  # adapters taking tickets already in the national standard
        self.callbacks = dict(callbacks or {})  # adapters whose partner hears a 退单 through its callback lane
        self.listeners: list[IntakeListener] = []  # told of every outcome (metrics, the ops chart)
        self.router = router
        self.rules = rules
        self.calendar = calendar
        self.enrich = enrich
        self.jurisdiction = jurisdiction  # None: no screen (every mapped ticket goes on)
        self.linker = linker  # None: no duplicate linking (nothing indexed, nothing looked up)
        self.follow_ups = FollowUps(store, router.config.national_destination, self)

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

    async def accept(self, adapter_id: str, payload: object, *, raw_body: bytes, content_type: str,
                     kept: str | None = None) -> IntakeOutcome:
        """Take one payload. The outcome is only returned once whatever it says is durably stored.

        A payload already kept in quarantine (`kept`, its entry's id: an operator's re-map) goes the same way —
        mapping, the jurisdiction screen, routing — except that a rejection leaves it in that entry and a 退单
        closes that entry with the 退单's notes, rather than quarantining it again, and the listeners are not
        told: they counted it when it came in."""
        started = time.perf_counter()
        try:
            outcome = await self._accept(adapter_id, payload, raw_body=raw_body, content_type=content_type,
                                         kept=kept)
        except Exception:
            if kept is None:
                self._tell(adapter_id, "error", started, None)
            raise
        if kept is None:
            self._tell(adapter_id, outcome.kind, started, outcome)
        return outcome

    def _tell(self, adapter_id: str, kind: str, started: float, outcome: IntakeOutcome | None) -> None:
        for listener in self.listeners:
            try:
                listener(adapter_id, kind, time.perf_counter() - started, outcome)
            except Exception:
                log.exception("intake listener failed", extra={"adapter_id": adapter_id})

    async def _accept(self, adapter_id: str, payload: object, *, raw_body: bytes, content_type: str,
                      kept: str | None) -> IntakeOutcome:
        result = self.map(adapter_id, payload)
        if isinstance(result, Rejected):
            quarantine_id = kept or await self.store.quarantine(adapter_id, raw_body, content_type,
                                                                list(result.errors))
            log.info("ticket quarantined", extra={"adapter_id": adapter_id, "quarantine_id": quarantine_id,
                                                  "rules": sorted({e.rule for e in result.errors})})
            return IntakeOutcome("quarantined", quarantine_id=quarantine_id, errors=result.errors,
                                 warnings=result.warnings)
        if isinstance(result, Returned):
            return await self._send_back(adapter_id, result, raw_body=raw_body, content_type=content_type, kept=kept)
        if isinstance(result, Noticed):
            return await self._follow_up(adapter_id, result.notice, raw_body=raw_body, content_type=content_type,
                                         kept=kept)
        # Another version of a ticket the gateway holds updates it, or is a repeat when older (a version 1 come
        # after the version 2 that made the ticket); the version that made it is a repeat the store's key answers.
        # The look-up is one keyed read; the store decides a race of two versions none of which is stored yet.
        stored = await known_ticket(self.store, result.ticket.source.source_system,
                                    result.ticket.source.source_ticket_no)
        if stored is not None and result.ticket.idempotency_key != registration_key(stored):
            return await self._new_version(stored, result, raw_body=raw_body, content_type=content_type)
        decision = self.screen(result.ticket)
        if decision is not None and decision.outcome == "return":
            return await self._send_back(adapter_id, returned_by(result.ticket, decision), raw_body=raw_body,
                                         content_type=content_type, decision=decision, kept=kept)
        return await self.store_ticket(result, raw_body=raw_body, content_type=content_type, decision=decision,
                                       kept=kept)

    async def _follow_up(self, adapter_id: str, notice: FollowUpNotice, *, raw_body: bytes, content_type: str,
                         kept: str | None) -> IntakeOutcome:
        """A supplement, urge or withdrawal: applied to the ticket it names, or kept in quarantine when the gateway
        holds no such ticket (yet: an operator re-maps it once the ticket has come)."""
        stored = await known_ticket(self.store, notice.source_system, notice.source_ticket_no)
        if stored is None:
            number = notice.source_ticket_no
            errors = (FieldError(field="follow_up.source_ticket_no", rule="unknown_ticket", value=number,
                                 message=f"the gateway holds no ticket {number} from {notice.source_system}: "
                                         f"a {notice.kind} follows a ticket sent before"),)
            quarantine_id = kept or await self.store.quarantine(adapter_id, raw_body, content_type, list(errors))
            log.info("follow-up of an unknown ticket quarantined", extra={
                "adapter_id": adapter_id, "quarantine_id": quarantine_id, "follow_up": notice.kind})
            return IntakeOutcome("quarantined", quarantine_id=quarantine_id, errors=errors)
        done = await self.follow_ups.notice(stored, notice, raw_body=raw_body, content_type=content_type)
        return _followed(done, ())

    def screen(self, ticket: Ticket) -> JurisdictionDecision | None:
        """The jurisdiction screen's decision on a mapped ticket (None when no rules are configured)."""
        return None if self.jurisdiction is None else screen(ticket, self.jurisdiction)

    async def _send_back(self, adapter_id: str, result: Returned, *, raw_body: bytes, content_type: str,
                         rule: RuleReturn | None = None, decision: JurisdictionDecision | None = None,
                         kept: str | None = None) -> IntakeOutcome:
        """退单, from the spec's return rule, the jurisdiction screen or a routing rule: the partner hears it
        through its callback lane, the payload is kept with the reason (and the rule and its evidence) — or the
        entry that already keeps it (`kept`, a re-map) is closed with them — and the push is answered returned."""
        # The 退单 callback is enqueued first: should the quarantine write fail, the partner sends again,
        # and the callback's key (its ticket number) makes the second one a repeat it drops.
        await self._tell_returned(adapter_id, result)
        said = result.reason if rule is None else f"{result.reason} (routing rule {rule.rule_id})"
        notes = [FieldError(field="(ticket)", rule=f"{RETURNED_NOTE}{result.reason_code}", message=said)]
        if decision is not None:
            matched = "；".join(f"{e.field}={e.matched}" for e in decision.evidence)
            notes.append(FieldError(field="routing.jurisdiction", rule=f"jurisdiction:{decision.rule_id}",
                                    message=f"主管部门：{decision.competent_authority or '-'}；命中：{matched or '-'}"))
        if kept is None:
            quarantine_id = await self.store.quarantine(adapter_id, raw_body, content_type, notes)
        else:
            quarantine_id = kept
            await self.store.return_quarantined(kept, notes)
        evidence = rule.evidence if rule is not None else decision.evidence if decision is not None else ()
        log.info("ticket returned to sender", extra={
            "adapter_id": adapter_id, "quarantine_id": quarantine_id, "reason_code": str(result.reason_code),
            "rule_id": rule.rule_id if rule else decision.rule_id if decision else "spec",
            "evidence": [e.model_dump() for e in evidence]})
        return IntakeOutcome("returned", quarantine_id=quarantine_id, errors=tuple(notes), returned=result,
                             decision=decision)

    def returned_callback(self, adapter_id: str, returned: Returned) -> OutboxEntry | None:
        """The 退单 write-back to the partner, in its own codes, on its callback lane; None when it has none."""
        return partner_writeback(self.callbacks.get(adapter_id), self.specs.get(adapter_id), returned,
                                 at=datetime.now(CHINA_STANDARD_TIME))

    async def _tell_returned(self, adapter_id: str, returned: Returned) -> None:
        """Send a 退单 back through the partner's callback lane, in its own codes, when it has one."""
        entry = self.returned_callback(adapter_id, returned)
        if entry is not None and entry.idempotency_key is not None:  # a write-back always has its own key
            await self.store.enqueue(entry.idempotency_key, entry.idempotency_key, [entry])

    async def store_ticket(self, mapped: Mapped, *, raw_body: bytes, content_type: str,
                           decision: JurisdictionDecision | None = None, kept: str | None = None) -> IntakeOutcome:
        """Set handler and deadlines, enrich, route a mapped ticket, then store it with its outbox; or send it
        back when a routing rule says so. A ticket the screen put to review is stored with its decision and no
        outbox: nothing is sent (nor routed) until an operator settles it."""
        ticket = self.prepare(mapped.ticket, decision)
        held = decision is not None and decision.outcome == "review"
        if self.enrich is not None:
            ticket = await self.enrich(ticket)  # before the rules: they read the respondent's credit flags
        sent_back = self.router.returned(ticket)
        if sent_back is not None:
            return await self._send_back(ticket.source.adapter_id, sent_back.returned, raw_body=raw_body,
                                         content_type=content_type, rule=sent_back, kept=kept)
        marks: list[str] = []
        query: LinkQuery | None = None
        if self.linker is not None:
            # The ticket is stored as it is when the look-up finds no candidate (most tickets: look-up and intake
            # are one round trip on Redis); when it finds some, they are scored first, as the national forward
            # names the tickets linked, and the ticket is stored with its links.
            marks, query = self.linker.look_up(ticket)
            ticket = self.linker.linked(ticket, ())  # links a partner sent are not the gateway's
        stored, ticket_json, outbox = self.with_outbox(ticket, held)
        shown: tuple[str, ...] | None = ()
        if query is None:
            outcome = await self.store.intake(stored, raw_body, content_type, outbox, ticket_json=ticket_json,
                                              link_marks=marks)
        else:
            linked = await self.store.intake_linking(stored, raw_body, content_type, outbox, query,
                                                     functools.partial(self._relinked, ticket, held),
                                                     ticket_json=ticket_json, link_marks=marks)
            outcome, shown = linked.result, linked.shown
            if linked.relinked is not None:
                stored = linked.relinked.ticket
        ticket = stored
        if outcome.number_taken:  # another version of the matter was stored first, maybe a moment ago: follow it
            holder = await self.store.get_ticket(outcome.ticket_id)
            if holder is None:
                raise UnknownTicket(outcome.ticket_id)
            return await self._new_version(holder, mapped, raw_body=raw_body, content_type=content_type)
        if outcome.created and ticket.links and self.linker is not None:
            self.linker.told(ticket, shown)
        kind: Literal["created", "repeat", "review"] = (
            "repeat" if not outcome.created else "review" if held else "created")
        log.info({"created": "ticket stored", "repeat": "ticket repeated", "review": "ticket held for review"}[kind],
                 extra={"ticket_id": outcome.ticket_id, "adapter_id": ticket.source.adapter_id,
                        **({"rule": decision.rule_id} if decision is not None else {})})
        return IntakeOutcome(kind, ticket_id=outcome.ticket_id, warnings=mapped.warnings, decision=decision)

    def _relinked(self, ticket: Ticket, held: bool, found: list[LinkCandidate]) -> Relinked:
        """The ticket linked to the candidates `found` that score, as stored (routes, JSON, outbox), and the link
        each of them is to show back. Pure: the SQLite store calls it on its thread, inside intake's transaction."""
        assert self.linker is not None
        stored, ticket_json, outbox = self.with_outbox(self.linker.linked(ticket, found), held)
        backs, most = self.linker.backs(stored)
        return Relinked(stored, ticket_json, outbox, backs, most)

    def with_outbox(self, ticket: Ticket, held: bool) -> tuple[Ticket, str, list[OutboxEntry]]:
        """The ticket as stored (with its routes), its JSON and its outbox; a ticket held for review sends nothing."""
        if held:
            return ticket, ticket.model_dump_json(), []
        return self.router.intake_outbox(ticket)

    async def _new_version(self, stored: Ticket, mapped: Mapped, *, raw_body: bytes,
                           content_type: str) -> IntakeOutcome:
        done = await self.follow_ups.new_version(stored, mapped.ticket, raw_body=raw_body, content_type=content_type)
        return _followed(done, mapped.warnings)

    def prepare(self, ticket: Ticket, decision: JurisdictionDecision | None = None) -> Ticket:
        """The handling organisation and statutory deadlines, from the ticket's own facts, and the jurisdiction
        screen's decision when there is one: one copy of the ticket for all three."""
        update = self.router.handling(ticket)
        update["deadlines"] = compute_deadlines(ticket.classification.business_type.value,
                                                ticket.source.source_received_at, self.rules, self.calendar)
        if decision is not None:
            update["jurisdiction"] = decision
        return ticket.model_copy(update={"routing": ticket.routing.model_copy(update=update)})

    def reassign(self, ticket: Ticket) -> Ticket:
        """A stored ticket's handler and deadlines worked out again from its facts and its whole lifecycle (a new
        version may move the matter or change its business type), under the rule set in force at receipt."""
        return with_deadlines(self.router.assign_handler(ticket), self.rules, self.calendar)


def _followed(done: FollowUpResult, warnings: tuple[FieldError, ...]) -> IntakeOutcome:
    return IntakeOutcome("updated" if done.verdict == "updated" else "repeat", ticket_id=done.ticket_id,
                         warnings=warnings, follow_up=done.said)


def with_jurisdiction(ticket: Ticket, decision: JurisdictionDecision) -> Ticket:
    """The ticket with the jurisdiction decision recorded on its routing."""
    return ticket.model_copy(update={"routing": ticket.routing.model_copy(update={"jurisdiction": decision})})


def returned_by(ticket: Ticket, decision: JurisdictionDecision) -> Returned:
    """The 退单 a return decision sends the partner, as a spec's return rule would: the national not-accepted
    reason and the reason naming the likely competent authority."""
    code = NotAcceptedReason(decision.return_reason_code or NotAcceptedReason.NOT_MARKET_SUPERVISION.value)
    return Returned(code, decision.reason or code.value, ticket.source.source_ticket_no)
