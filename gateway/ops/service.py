"""The ops service: find tickets, follow deliveries, replay, re-map, reload, audit; one place for API, pages, CLI."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from contracts.delivery import AttemptOutcome, AttemptReceipt, DeliveryReceipt, DeliveryState
from contracts.ticket import Ticket
from gateway.compaction import compact_older_than
from gateway.delivery.breaker import BreakerState
from gateway.delivery.policy import Decision, DecisionKind
from gateway.logs import mask_text
from gateway.ops import counts as series
from gateway.ops.access import USERS_FILE, Authenticator, OpsUser, Role
from gateway.ops.counts import MinuteCounts
from gateway.ops.masking import mask_in_text, masked_errors, must_mask, shown, ticket_json
from gateway.ops.metrics import OpsMetrics
from gateway.ops.risk import DeadlineRisk, deadline_risk
from gateway.ops.schemas import (
    AuditSearch,
    AuditView,
    DeliveryDetail,
    DeliverySearch,
    QuarantineSearch,
    QuarantineView,
    ReloadResult,
    RemapResult,
    ReplayRequest,
    ReplayResult,
    TicketDetail,
    TicketSearch,
    TicketSummary,
    TimelineEntry,
)
from gateway.ops.throttle import FailureThrottle
from gateway.pollers import PollerStatus
from gateway.runtime import Components, Runtime, load_components
from gateway.store.base import AuditEntry, AuditQuery, DeliveryFilter, QuarantinedPayload, Store, TicketQuery
from gateway.tickets.intake import IntakeOutcome
from mapping.engine import Mapped, Rejected, Returned
from mapping.payload import PayloadError, parse_json_body, parse_xml, xml_to_dict

log = logging.getLogger(__name__)

# Deadline risk is found by reading the newest tickets (there is no index of due dates yet): how many, how often.
RISK_SCAN_LIMIT = 2000
RISK_CACHE_SECONDS = 30.0
CHART_POINTS = 72  # the chart's resolution: 6 hours in 5-minute steps, 1 hour in minutes

STATE_LABELS = {"pending": "待发送", "in_flight": "发送中", "retrying": "重试中", "delivered": "已送达", "dead": "死信"}
STATUS_LABELS = {
    "RECEIVED": "已接收", "DISPATCHED": "已派单", "ACCEPTED": "已受理", "NOT_ACCEPTED": "不予受理",
    "MEDIATING": "调解中", "MEDIATED": "调解成功", "MEDIATION_TERMINATED": "终止调解", "FILED": "已立案",
    "NOT_FILED": "不予立案",
    "EXTENDED": "已延期", "RETURNED": "已退回", "TRANSFERRED_OUT": "已转出", "WITHDRAWN": "已撤回", "CLOSED": "已办结",
}
CIRCUIT_LABELS = {"closed": "正常", "open": "熔断", "half_open": "试探", "none": "—"}
ACTION_LABELS = {"replay": "重新投递", "replay.dry_run": "重新投递（预演）", "quarantine.remap": "隔离件重新映射",
                 "config.reload": "重新加载配置", "compact": "压缩已送达投递",
                 "jurisdiction.review": "受理范围人工判定"}
RISK_LABELS = {"overdue": "已逾期", "due_soon": "即将到期"}


class OpsError(Exception):
    """A refusal the caller can act on: HTTP status, a code, the field at fault, a sentence, details."""

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None,
                 errors: Sequence[dict[str, Any]] = (), retry_after: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.errors = list(errors)
        self.retry_after = retry_after

    @property
    def headers(self) -> dict[str, str] | None:
        if self.status == 401:
            return {"WWW-Authenticate": "Bearer"}
        if self.retry_after is not None:
            return {"Retry-After": str(self.retry_after)}
        return None

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"error": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.errors:
            body["errors"] = self.errors
        return body


def require(user: OpsUser, role: Role, what: str) -> None:
    if not user.may(role):
        raise OpsError(403, "forbidden", f"{what} needs the {role.value} role; {user.id} is {user.role.value}",
                       field="Authorization")


# -- dashboard view --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LaneRow:
    destination: str
    pending: int
    in_flight: int
    retrying: int
    delivered: int
    dead: int
    oldest_waiting_s: float
    circuit: str  # closed / open / half_open / none (no breaker, or no worker in this process)

    @property
    def circuit_label(self) -> str:
        return CIRCUIT_LABELS.get(self.circuit, self.circuit)

    @property
    def undelivered(self) -> int:
        return self.pending + self.in_flight + self.retrying


@dataclass(frozen=True)
class AdapterRow:
    adapter_id: str
    description: str | None
    kind: str
    enabled: bool
    received: int  # stored tickets plus payloads still in quarantine
    mapped: int
    quarantined: int  # open
    quarantined_total: int
    callback: LaneRow | None
    poller: PollerStatus | None


@dataclass(frozen=True)
class RiskRow:
    ticket_id: str
    source_ticket_no: str
    adapter_id: str
    status: str
    risk: Literal["overdue", "due_soon"]
    kind: str
    due_on: str
    handler: str | None


@dataclass(frozen=True)
class Chart:
    """Counts per step over the last hours, drawn as inline SVG polylines."""

    width: int
    height: int
    top: int
    starts: list[datetime]
    values: dict[str, list[int]]
    peak: int
    step_minutes: int = 5

    @property
    def hours(self) -> float:
        return len(self.starts) * self.step_minutes / 60

    def points(self, name: str) -> str:
        data = self.values.get(name, [])
        if not data:
            return ""
        step = self.width / max(len(data) - 1, 1)
        scale = (self.height - self.top) / max(self.peak, 1)
        return " ".join(f"{i * step:.1f},{self.height - v * scale:.1f}" for i, v in enumerate(data))

    def total(self, name: str) -> int:
        return sum(self.values.get(name, []))

    def ticks(self) -> list[tuple[float, str]]:
        if len(self.starts) < 2:
            return []
        every = max(len(self.starts) // 6, 1)
        step = self.width / (len(self.starts) - 1)
        china = timedelta(hours=8)
        return [(i * step, (self.starts[i] + china).strftime("%H:%M")) for i in range(0, len(self.starts), every)]


@dataclass(frozen=True)
class Dashboard:
    generated_at: datetime
    region: str
    adapters: list[AdapterRow]
    destinations: list[LaneRow]
    at_risk: list[RiskRow]
    overdue: int
    due_soon: int
    dead: list[DeliveryReceipt]
    chart: Chart
    totals: dict[str, int] = field(default_factory=dict)


# -- the service ------------------------------------------------------------------------------------------

class OpsService:
    """Everything ops do, with roles checked, personal data masked for those who may not see it, actions audited."""

    def __init__(self, runtime: Runtime, auth: Authenticator, *, users_file: Path,
                 metrics: OpsMetrics | None = None, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.runtime = runtime
        self.auth = auth
        self.users_file = users_file
        self.metrics = metrics or OpsMetrics()
        self.counts = MinuteCounts(runtime.store, clock=clock)
        self.clock = clock
        self.csrf_key = secrets.token_bytes(32)  # per process: a form older than a restart is refused
        self.throttle = FailureThrottle()
        self._risk: tuple[float, list[tuple[Ticket, DeadlineRisk]]] | None = None

    @classmethod
    def for_runtime(cls, runtime: Runtime, *, users_file: Path | None = None) -> OpsService:
        settings = runtime.settings
        path = users_file or settings.resolve(USERS_FILE)
        return cls(runtime, Authenticator.from_file(path, settings.resolved_data_dir), users_file=path)

    @property
    def store(self) -> Store:
        return self.runtime.store

    # -- wiring -----------------------------------------------------------------------------------------
    def install(self) -> None:
        """Count every intake (before the runtime starts, so pollers and routes use the counting intake)."""
        if self._on_intake not in self.runtime.intake.listeners:
            self.runtime.intake.listeners.append(self._on_intake)

    @asynccontextmanager
    async def running(self, flush_interval: float = 5.0) -> AsyncIterator[OpsService]:
        """While the gateway runs: delivery attempts feed metrics and the chart; counts are flushed to the store."""
        if self.runtime.engine is not None:
            self.runtime.engine.add_listener(self._on_attempt)
        task = asyncio.create_task(self.counts.run(flush_interval), name="ops-counts-flush")
        try:
            yield self
        finally:
            await self.counts.stop(task)

    def _on_intake(self, adapter_id: str, kind: str, seconds: float, outcome: IntakeOutcome | None) -> None:
        rules = sorted({e.rule for e in outcome.errors}) if outcome is not None and kind == "quarantined" else []
        if kind == "returned" and outcome is not None and outcome.returned is not None:
            rules = [f"returned:{outcome.returned.reason_code}"]
        self.metrics.observe_intake(adapter_id, kind, seconds, rules)
        if kind != "error":
            self.counts.add(series.INTAKE)
        if kind in ("quarantined", "returned"):
            self.counts.add(series.QUARANTINED)

    def _on_attempt(self, destination: str, attempt: AttemptReceipt, decision: Decision) -> None:
        self.metrics.observe_attempt(destination, attempt, decision)
        if decision.kind is DecisionKind.DELIVERED:
            self.counts.add(series.DELIVERED)
        else:
            self.counts.add(series.FAILED)
            if decision.kind is DecisionKind.DEAD:
                self.counts.add(series.DEAD)

    # -- access and audit -------------------------------------------------------------------------------
    def authenticate(self, token: str | None, client: str | None = None) -> OpsUser | None:
        """The user a token belongs to, or None. A token not recognised costs a salted hash per user, so a
        client (its address) with too many failed tries in a while is refused with a 429 first."""
        if not token:
            return None
        known = self.auth.recognised(token)
        if known is not None:
            return known
        if client is not None:
            wait = self.throttle.retry_after(client)
            if wait:
                raise OpsError(429, "too_many_failed_sign_ins",
                               f"too many failed sign-ins from this address; try again in {wait} s",
                               field="Authorization", retry_after=wait)
        user = self.auth.authenticate(token)
        if client is not None:
            if user is None:
                self.throttle.failed(client)
            else:
                self.throttle.succeeded(client)
        return user

    async def record(self, user: OpsUser, action: str, ticket_ids: Sequence[str], detail: dict[str, Any],
                     outcome: str = "ok") -> str:
        """Write one audit entry; the action does not count as done until it is written."""
        entry = AuditEntry(actor=user.id, role=user.role.value, action=action, at=self.clock(),
                           ticket_ids=tuple(dict.fromkeys(ticket_ids)), outcome=outcome, detail=detail)
        entry_id: str = await self.store.append_audit(entry)
        self.metrics.ops_actions.labels(action, outcome).inc()
        log.info("ops action", extra={"actor": user.id, "role": user.role.value, "action": action,
                                      "outcome": outcome, "ticket_ids": list(entry.ticket_ids)[:20],
                                      "audit_id": entry_id})
        return entry_id

    async def audit(self, search: AuditSearch, user: OpsUser) -> list[AuditView]:
        require(user, Role.ADMIN, "reading the audit log")
        return [_audit_view(e) for e in await self.store.list_audit(search.query())]

    # -- tickets ----------------------------------------------------------------------------------------
    def _risk_of(self, ticket: Ticket) -> DeadlineRisk | None:
        settings = self.runtime.settings
        return deadline_risk(ticket, self.clock(), self.runtime.components.calendar,
                             due_soon_within=settings.deadlines.due_soon_working_days)

    def summary(self, ticket: Ticket, user: OpsUser) -> TicketSummary:
        risk = self._risk_of(ticket)
        c = ticket.complainant
        return TicketSummary(
            ticket_id=ticket.ticket_id, source_ticket_no=ticket.source.source_ticket_no,
            national_registration_no=ticket.national_registration_no, adapter_id=ticket.source.adapter_id,
            business_type=ticket.classification.business_type.value, urgency=ticket.classification.urgency.value,
            status=ticket.lifecycle.status, received_at=ticket.source.source_received_at,
            title=_title(ticket, must_mask(ticket, user.role)),
            complainant_name=shown(ticket, user.role, "name", c.name),
            complainant_phone=shown(ticket, user.role, "phone", c.phone),
            respondent_name=ticket.respondent.name, respondent_uscc=ticket.respondent.uscc,
            handler_org_name=ticket.routing.handler_org_name,
            deadline_risk=risk.risk if risk else None, due_on=risk.due_on if risk else None,
            masked=must_mask(ticket, user.role),
        )

    async def search(self, search: TicketSearch, user: OpsUser) -> list[TicketSummary]:
        if search.deadline is None:
            tickets = await self.store.search_tickets(search.query())
            return [self.summary(t, user) for t in tickets]
        # Deadline risk is not indexed: read a wider set of the newest matches and keep those at risk.
        wanted = {"overdue": {"overdue"}, "due_soon": {"due_soon"}, "at_risk": {"overdue", "due_soon"}}[search.deadline]
        found: list[TicketSummary] = []
        for ticket in await self.store.search_tickets(search.query(limit=RISK_SCAN_LIMIT)):
            risk = self._risk_of(ticket)
            if risk is not None and risk.risk in wanted:
                found.append(self.summary(ticket, user))
                if len(found) >= search.limit:
                    break
        return found

    async def ticket_detail(self, ticket_id: str, user: OpsUser) -> TicketDetail:
        ticket = await self.store.get_ticket(ticket_id)
        if ticket is None:
            raise OpsError(404, "not_found", f"no ticket {ticket_id}", field="ticket_id")
        masked = must_mask(ticket, user.role)
        receipts: list[DeliveryReceipt] = await self.store.list_deliveries(
            DeliveryFilter(ticket_id=ticket_id, limit=1000))
        deliveries: list[DeliveryDetail] = []
        for receipt in receipts:
            attempts: list[AttemptReceipt] = await self.store.list_attempts(receipt.delivery_id)
            if masked:
                attempts = [a.model_copy(update={"response_body": mask_text(a.response_body)})
                            if a.response_body else a for a in attempts]
            deliveries.append(DeliveryDetail(delivery=receipt, attempts=attempts, waits_for=_waits_for(receipt,
                                                                                                    receipts)))
        audit = await self.store.list_audit(AuditQuery(ticket_id=ticket_id, limit=200))
        risk = self._risk_of(ticket)
        return TicketDetail(
            ticket=ticket_json(ticket, user.role), masked=masked,
            deadline_risk=risk.risk if risk else None, due_on=risk.due_on if risk else None,
            deliveries=deliveries, timeline=timeline(ticket, deliveries, audit, masked),
            audit=[_audit_view(e) for e in audit],
        )

    # -- deliveries -------------------------------------------------------------------------------------
    async def deliveries(self, search: DeliverySearch, user: OpsUser) -> list[DeliveryReceipt]:
        found: list[DeliveryReceipt] = await self.store.list_deliveries(search.filter())
        return found

    async def replay(self, request: ReplayRequest, user: OpsUser) -> ReplayResult:
        require(user, Role.OPERATOR, "replaying deliveries")
        if request.delivery_ids is not None:
            for delivery_id in request.delivery_ids:
                if await self.store.get_delivery(delivery_id) is None:
                    raise OpsError(404, "not_found", f"no delivery {delivery_id}", field="delivery_ids")
            ids: list[str] = await self.store.replay(delivery_ids=list(request.delivery_ids),
                                                     dry_run=request.dry_run)
            detail: dict[str, Any] = {"requested": list(request.delivery_ids)}
        else:
            assert request.filter is not None
            ids = await self.store.replay(request.filter.filter(), dry_run=request.dry_run)
            detail = {"filter": request.filter.model_dump(mode="json", exclude_none=True)}
        receipts = [r for r in [await self.store.get_delivery(i) for i in ids] if r is not None]
        ticket_ids = list(dict.fromkeys(r.ticket_id for r in receipts))
        detail.update({"delivery_ids": ids, "destinations": sorted({r.destination for r in receipts})})
        action = "replay.dry_run" if request.dry_run else "replay"
        audit_id = await self.record(user, action, ticket_ids, detail)
        if not request.dry_run and self.runtime.engine is not None:
            for destination in {r.destination for r in receipts}:
                self.runtime.engine.wake(destination)
        return ReplayResult(dry_run=request.dry_run, delivery_ids=ids, ticket_ids=ticket_ids, count=len(ids),
                            audit_id=audit_id)

    async def compact(self, older_than_days: int, user: OpsUser,
                      progress: Callable[[int], None] | None = None) -> int:
        """Drop the bodies of delivered deliveries created more than `older_than_days` days ago (audited)."""
        require(user, Role.ADMIN, "compacting delivered deliveries")
        count = await compact_older_than(self.store, older_than_days, progress=progress)
        await self.record(user, "compact", [], {"older_than_days": older_than_days, "compacted": count})
        return count

    # -- quarantine -------------------------------------------------------------------------------------
    def quarantine_view(self, item: QuarantinedPayload, user: OpsUser) -> QuarantineView:
        return QuarantineView(quarantine_id=item.quarantine_id, adapter_id=item.adapter_id,
                              received_at=item.received_at, content_type=item.content_type, size=len(item.body),
                              errors=masked_errors(item.errors, user.role),
                              resolved_ticket_id=item.resolved_ticket_id)

    async def quarantine(self, search: QuarantineSearch, user: OpsUser) -> list[QuarantineView]:
        items: list[QuarantinedPayload] = await self.store.list_quarantined(search.adapter_id, search.limit)
        return [self.quarantine_view(i, user) for i in items
                if search.include_resolved or i.resolved_ticket_id is None]

    async def remap(self, quarantine_id: str, user: OpsUser) -> RemapResult:
        """Map a quarantined payload again with the adapter's current spec; store it and resolve the entry."""
        require(user, Role.OPERATOR, "re-mapping quarantined payloads")
        item: QuarantinedPayload | None = await self.store.get_quarantined(quarantine_id)
        if item is None:
            raise OpsError(404, "not_found", f"no quarantined payload {quarantine_id}", field="quarantine_id")
        if item.resolved_ticket_id is not None:
            return RemapResult(quarantine_id=quarantine_id, outcome="already_resolved",
                               ticket_id=item.resolved_ticket_id)
        intake = self.runtime.intake
        if not intake.knows(item.adapter_id):
            raise OpsError(409, "unknown_adapter", f"adapter {item.adapter_id} has no mapping spec configured now",
                           field="adapter_id")
        detail: dict[str, Any] = {"quarantine_id": quarantine_id, "adapter_id": item.adapter_id}
        try:
            payload = payload_of(item.body, item.content_type)
        except PayloadError as err:
            await self.record(user, "quarantine.remap", [], {**detail, "error": str(err)}, outcome="unreadable")
            raise OpsError(422, "unreadable_payload", f"the kept payload cannot be read: {err}",
                           field="quarantine_id") from err
        result = intake.map(item.adapter_id, payload)
        if isinstance(result, Rejected):
            errors = masked_errors(result.errors, user.role)
            audit_id = await self.record(user, "quarantine.remap", [],
                                         {**detail, "rules": sorted({e.rule for e in result.errors})},
                                         outcome="still_rejected")
            return RemapResult(quarantine_id=quarantine_id, outcome="still_rejected", errors=errors,
                               audit_id=audit_id)
        if isinstance(result, Returned):
            audit_id = await self.record(user, "quarantine.remap", [], {**detail, "reason_code": result.reason_code},
                                         outcome="returned")
            return RemapResult(quarantine_id=quarantine_id, outcome="returned", audit_id=audit_id,
                               errors=[{"field": "(ticket)", "rule": f"returned:{result.reason_code}",
                                        "message": result.reason}])
        assert isinstance(result, Mapped)
        outcome = await intake.store_ticket(result, raw_body=item.body, content_type=item.content_type)
        assert outcome.ticket_id is not None
        await self.store.resolve_quarantined(quarantine_id, outcome.ticket_id)
        audit_id = await self.record(user, "quarantine.remap", [outcome.ticket_id], {**detail, "kind": outcome.kind})
        if self.runtime.engine is not None:
            self.runtime.engine.wake()
        kind: Literal["created", "repeat"] = "created" if outcome.kind == "created" else "repeat"
        return RemapResult(quarantine_id=quarantine_id, outcome=kind, ticket_id=outcome.ticket_id, audit_id=audit_id)

    # -- configuration ------------------------------------------------------------------------------------
    async def reload(self, user: OpsUser) -> ReloadResult:
        """Read adapters, mapping specs, routing, deadline rules, calendar and ops users again; apply what can be
        applied live (mapping, routing, deadlines, users) and name what needs a restart (transports, lanes)."""
        require(user, Role.ADMIN, "reloading configuration")
        runtime = self.runtime
        try:
            components = await asyncio.to_thread(load_components, runtime.settings)
            self._check_routing(components)
            auth = await asyncio.to_thread(Authenticator.from_file, self.users_file,
                                           runtime.settings.resolved_data_dir)
        except Exception as err:  # every configuration error names its file, line and key
            await self.record(user, "config.reload", [], {"error": str(err)[:2000]}, outcome="invalid")
            raise OpsError(422, "invalid_configuration", str(err), field="configuration") from err
        old = runtime.components
        restart: list[str] = []
        for adapter_id in sorted(set(old.adapter_configs) | set(components.adapter_configs)):
            before, after = old.adapter_configs.get(adapter_id), components.adapter_configs.get(adapter_id)
            if before is None or after is None or _transport(before) != _transport(after):
                restart.append(f"adapter:{adapter_id}")
        if old.delivery != components.delivery:
            restart.append("delivery")
        intake, status = runtime.intake, runtime.status
        intake.specs, intake.router, intake.rules, intake.calendar = (components.specs, components.router,
                                                                     components.rules, components.calendar)
        intake.jurisdiction = components.jurisdiction
        status.specs, status.router = components.specs, components.router
        runtime.components = components
        self.auth = auth
        self._risk = None
        reloaded = ["adapters", "mapping_specs", "routing", "jurisdiction_rules", "deadline_rules", "calendar",
                    "ops_users"]
        audit_id = await self.record(user, "config.reload", [], {"restart_required": restart,
                                                                 "specs": sorted(components.specs)})
        return ReloadResult(reloaded=reloaded, adapters=sorted(components.specs), restart_required=restart,
                            ops_users=len(auth.users), audit_id=audit_id)

    def _check_routing(self, components: Components) -> None:
        """Routing may only name lanes that exist (start-up checks the same when it builds the lanes)."""
        lanes = {d.name for d in components.delivery.destinations}
        lanes |= {c.name for a in self.runtime.adapters.values() if (c := a.callback_destination()) is not None}
        missing = components.router.destinations - lanes
        if missing:
            settings = components.settings
            raise ValueError(f"{settings.resolve(settings.routing_file)}: routing names destinations that "
                             f"{settings.resolve(settings.delivery_file)} does not define: "
                             f"{', '.join(sorted(missing))}")

    # -- the dashboard and metrics ------------------------------------------------------------------------
    async def risks(self) -> list[tuple[Ticket, DeadlineRisk]]:
        """Open tickets at risk among the newest RISK_SCAN_LIMIT, most pressing first; cached briefly."""
        now = time.monotonic()
        if self._risk is not None and now - self._risk[0] < RISK_CACHE_SECONDS:
            return self._risk[1]
        found: list[tuple[Ticket, DeadlineRisk]] = []
        for ticket in await self.store.search_tickets(TicketQuery(limit=RISK_SCAN_LIMIT)):
            risk = self._risk_of(ticket)
            if risk is not None:
                found.append((ticket, risk))
        found.sort(key=lambda p: (p[1].risk != "overdue", p[1].due_on))
        self._risk = (now, found)
        return found

    def _breakers(self) -> dict[str, str]:
        engine = self.runtime.engine
        if engine is None:
            return {}
        return {name: (lane.breaker.state.value if lane.breaker is not None else "none")
                for name, lane in engine.status().items()}

    async def lanes(self) -> list[LaneRow]:
        stats: dict[str, dict[str, float]] = await self.store.lane_stats()
        breakers = self._breakers()
        names = sorted(set(stats) | set(breakers))
        rows = []
        for name in names:
            lane = stats.get(name, {})
            rows.append(LaneRow(
                destination=name, pending=int(lane.get("pending", 0)), in_flight=int(lane.get("in_flight", 0)),
                retrying=int(lane.get("retrying", 0)), delivered=int(lane.get("delivered", 0)),
                dead=int(lane.get("dead", 0)), oldest_waiting_s=float(lane.get("oldest_waiting_age_s", 0.0)),
                circuit=breakers.get(name, "none"),
            ))
        return rows

    async def dashboard(self, user: OpsUser, hours: float = 6.0) -> Dashboard:
        lanes = await self.lanes()
        by_lane = {row.destination: row for row in lanes}
        configs = self.runtime.components.adapter_configs
        adapter_ids = sorted(configs)
        stats: dict[str, dict[str, int]] = await self.store.intake_stats(adapter_ids)
        pollers = self.runtime.pollers.status() if self.runtime.pollers is not None else {}
        adapters = []
        for adapter_id in adapter_ids:
            config, s = configs[adapter_id], stats.get(adapter_id, {})
            adapters.append(AdapterRow(
                adapter_id=adapter_id, description=config.description, kind=config.kind, enabled=config.enabled,
                received=s.get("tickets", 0) + s.get("quarantine_open", 0), mapped=s.get("tickets", 0),
                quarantined=s.get("quarantine_open", 0), quarantined_total=s.get("quarantined", 0),
                callback=by_lane.get(f"callback:{adapter_id}"), poller=pollers.get(adapter_id),
            ))
        destinations = [row for row in lanes if not row.destination.startswith("callback:")]
        risks = await self.risks()
        at_risk = [RiskRow(ticket_id=t.ticket_id, source_ticket_no=t.source.source_ticket_no,
                           adapter_id=t.source.adapter_id, status=t.lifecycle.status.value, risk=r.risk,
                           kind=r.deadline.kind, due_on=r.due_on.isoformat(), handler=t.routing.handler_org_name)
                   for t, r in risks[:50]]
        dead: list[DeliveryReceipt] = await self.store.list_deliveries(
            DeliveryFilter(state=DeliveryState.DEAD, limit=50))
        chart = await self.chart(hours)
        totals = {
            "undelivered": sum(r.undelivered for r in lanes), "dead": sum(r.dead for r in lanes),
            "delivered": sum(r.delivered for r in lanes), "quarantined": sum(a.quarantined for a in adapters),
            "received": sum(a.received for a in adapters),
        }
        return Dashboard(generated_at=self.clock(), region=self.runtime.settings.region.name, adapters=adapters,
                         destinations=destinations, at_risk=at_risk,
                         overdue=sum(1 for _, r in risks if r.risk == "overdue"),
                         due_soon=sum(1 for _, r in risks if r.risk == "due_soon"),
                         dead=list(reversed(dead)), chart=chart, totals=totals)

    async def chart(self, hours: float) -> Chart:
        per_minute = await self.counts.read(hours)
        now = series.minute_of(self.clock())
        minutes = max(1, round(hours * 60 / CHART_POINTS))  # ~CHART_POINTS points, whatever the span
        step = timedelta(minutes=minutes)
        buckets = max(int(hours * 60 / minutes), 2)
        last = now - timedelta(minutes=(now.hour * 60 + now.minute) % minutes)
        first = last - step * (buckets - 1)
        starts = [first + step * i for i in range(buckets)]
        values = {name: [0] * buckets for name in series.SERIES}
        for minute, counts in per_minute.items():
            index = int((minute - first) / step)
            if 0 <= index < buckets:
                for name, n in counts.items():
                    if name in values:
                        values[name][index] += n
        peak = max([max(v) for v in values.values()] + [1])
        return Chart(width=720, height=180, top=10, starts=starts, values=values, peak=peak, step_minutes=minutes)

    async def refresh_metrics(self) -> None:
        """Set the gauges from the store and this process's engine and pollers, just before a scrape."""
        self.metrics.set_lanes(await self.store.lane_stats())
        breakers = self._breakers()
        self.metrics.set_breakers({name: BreakerState(s) for name, s in breakers.items() if s != "none"})
        risks = await self.risks()
        self.metrics.set_risk(sum(1 for _, r in risks if r.risk == "overdue"),
                              sum(1 for _, r in risks if r.risk == "due_soon"))
        stats: dict[str, dict[str, int]] = await self.store.intake_stats(
            sorted(self.runtime.components.adapter_configs))
        self.metrics.set_quarantine({a: s["quarantine_open"] for a, s in stats.items()})
        if self.runtime.pollers is not None:
            self.metrics.set_pollers({a: p.consecutive_failures for a, p in self.runtime.pollers.status().items()})



_OUTSTANDING = (DeliveryState.PENDING, DeliveryState.RETRYING, DeliveryState.IN_FLIGHT)


def _waits_for(receipt: DeliveryReceipt, of_ticket: Sequence[DeliveryReceipt]) -> str | None:
    """The ticket's earlier delivery to the same destination this waiting one goes after, if still outstanding
    (one ticket's deliveries to a lane go in the order they were enqueued)."""
    if receipt.state not in (DeliveryState.PENDING, DeliveryState.RETRYING):
        return None
    ahead = [r for r in of_ticket if r.destination == receipt.destination and r.state in _OUTSTANDING
             and r.created_at < receipt.created_at]
    return min(ahead, key=lambda r: r.created_at).delivery_id if ahead else None


def payload_of(body: bytes, content_type: str) -> object:
    """A kept raw payload as the adapter handed it to intake: JSON as data, an XML record as a dict."""
    if "xml" in content_type.lower():
        root = parse_xml(body, content_type)
        return xml_to_dict(root)
    return parse_json_body(body, content_type)


def _transport(config: Any) -> Any:
    """What of an adapter's configuration only a restart applies (all but its mapping spec and description)."""
    return config.model_dump(exclude={"mapping_spec", "description"})


def _title(ticket: Ticket, masked: bool) -> str | None:
    text = ticket.registration.title or ticket.registration.content[:60]
    return mask_in_text(ticket, text) if masked else text


def _audit_view(entry: AuditEntry) -> AuditView:
    return AuditView(entry_id=entry.entry_id, at=entry.at, actor=entry.actor, role=entry.role, action=entry.action,
                     outcome=entry.outcome, ticket_ids=list(entry.ticket_ids), detail=dict(entry.detail))


def timeline(ticket: Ticket, deliveries: Sequence[DeliveryDetail], audit: Sequence[AuditEntry],
             masked: bool) -> list[TimelineEntry]:
    """What happened to a ticket, oldest first: receipt, storing, every attempt, every status, every ops action."""
    entries = [
        TimelineEntry(at=ticket.source.source_received_at, kind="received", label="来源系统受理",
                      detail=f"{ticket.source.source_system} {ticket.source.source_ticket_no}"),
        TimelineEntry(at=ticket.registration.registered_at, kind="registered", label="登记",
                      detail=ticket.routing.handler_org_name),
    ]
    if deliveries:
        first = min(d.delivery.created_at for d in deliveries)
        at_intake = sorted({d.delivery.destination for d in deliveries
                            if (d.delivery.created_at - first).total_seconds() < 1})
        entries.append(TimelineEntry(at=first, kind="stored", label="网关入库", tone="ok",
                                     detail="投递至 " + "、".join(at_intake)))
    for d in deliveries:
        r = d.delivery
        for a in d.attempts:
            ok = a.outcome is AttemptOutcome.SUCCESS
            code = a.status_code if a.status_code is not None else (a.error_class or "无响应")
            tone: Literal["ok", "warn", "bad"] = "ok" if ok else (
                "bad" if a.outcome is AttemptOutcome.PERMANENT else "warn")
            entries.append(TimelineEntry(at=a.started_at, kind="attempt", tone=tone,
                                         label=f"投递 {r.destination} 第{a.number}次：{'成功' if ok else '失败'}",
                                         detail=f"{code}，{a.duration_ms:.0f} ms"))
        if r.state is DeliveryState.DEAD:
            last = d.attempts[-1].started_at if d.attempts else r.created_at
            entries.append(TimelineEntry(at=last, kind="dead", label=f"投递 {r.destination} 转入死信", tone="bad",
                                         detail=r.last_error_class))
    for e in ticket.lifecycle.events:
        opinion = (mask_in_text(ticket, e.opinion) if masked else e.opinion) if e.opinion else None
        entries.append(TimelineEntry(
            at=e.at, kind="status", tone="ok",
            label=f"状态：{STATUS_LABELS.get(e.from_status.value, e.from_status.value)} → "
                  f"{STATUS_LABELS.get(e.to_status.value, e.to_status.value)}",
            detail=" ".join(x for x in (e.org, opinion) if x) or None))
    for rejected in ticket.lifecycle.rejected_events:
        entries.append(TimelineEntry(at=rejected.received_at, kind="rejected_event", tone="warn",
                                     label=f"拒收状态事件 {STATUS_LABELS.get(rejected.status.value, rejected.status)}",
                                     detail=rejected.reason))
    for entry in audit:
        entries.append(TimelineEntry(at=entry.at, kind="audit", tone="info",
                                     label=f"运维操作：{ACTION_LABELS.get(entry.action, entry.action)}",
                                     detail=f"{entry.actor}（{entry.role}） {entry.outcome}"))
    entries.sort(key=lambda e: e.at)
    return entries
