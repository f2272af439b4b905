"""The ops service: find tickets, follow deliveries, replay, re-map, reload, audit; one place for API, pages, CLI."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from contracts.delivery import AttemptReceipt, DeliveryReceipt
from contracts.ticket import Ticket
from gateway.compaction import compact_older_than
from gateway.delivery.policy import Decision, DecisionKind
from gateway.logs import mask_text
from gateway.ops import counts as series
from gateway.ops.access import USERS_FILE, Authenticator, OpsUser, Role
from gateway.ops.board import ON_TIME_DAYS, Board
from gateway.ops.chart import Chart
from gateway.ops.counts import MinuteCounts
from gateway.ops.errors import OpsError, require
from gateway.ops.masking import masked_errors, must_mask, shown, ticket_json
from gateway.ops.metrics import OpsMetrics
from gateway.ops.on_time import MAX_ON_TIME_DAYS, OnTimeReport
from gateway.ops.reload import RELOADED, read_configuration, restart_required
from gateway.ops.replay import not_replayed, with_followers
from gateway.ops.schemas import (
    AlertSearch,
    AlertView,
    AuditSearch,
    AuditView,
    BehindTicket,
    DeliveryDetail,
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
from gateway.ops.throttle import FailureThrottle
from gateway.ops.views import Dashboard, audit_view, timeline, title_of, waits_for
from gateway.runtime import Runtime
from gateway.store.base import AuditEntry, AuditQuery, DeliveryFilter, QuarantinedPayload, Store, TicketQuery
from gateway.tickets.intake import IntakeOutcome
from mapping.payload import PayloadError, parse_json_body, parse_xml, xml_to_dict

log = logging.getLogger(__name__)


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
        self.board = Board(runtime, self.counts, clock)
        self.restart_pending: list[str] = []  # what the configuration on disk changed that runs only after a restart

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
        if self.runtime.alerts is not None:
            self.runtime.alerts.listeners.append(lambda channel, _: self.metrics.alert_messages.labels(channel).inc())
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
        if kind not in ("error", "repeat"):  # as 累计接收 counts: a repeat of a known ticket is nothing new
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
                               zh=f"此地址登录失败次数过多，请 {wait} 秒后再试", field="Authorization",
                               retry_after=wait)
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
        return [audit_view(e) for e in await self.store.list_audit(search.query())]

    # -- tickets ----------------------------------------------------------------------------------------
    def summary(self, ticket: Ticket, user: OpsUser) -> TicketSummary:
        risk = self.board.risk_of(ticket)
        c = ticket.complainant
        return TicketSummary(
            ticket_id=ticket.ticket_id, source_ticket_no=ticket.source.source_ticket_no,
            national_registration_no=ticket.national_registration_no, adapter_id=ticket.source.adapter_id,
            business_type=ticket.classification.business_type.value, urgency=ticket.classification.urgency.value,
            status=ticket.lifecycle.status, received_at=ticket.source.source_received_at,
            title=title_of(ticket, must_mask(ticket, user.role)),
            complainant_name=shown(ticket, user.role, "name", c.name),
            complainant_phone=shown(ticket, user.role, "phone", c.phone),
            respondent_name=ticket.respondent.name, respondent_uscc=ticket.respondent.uscc,
            handler_org_name=ticket.routing.handler_org_name,
            deadline_risk=risk.risk if risk else None, due_on=risk.due_on if risk else None,
            masked=must_mask(ticket, user.role),
        )

    async def search(self, search: TicketSearch, user: OpsUser) -> list[TicketSummary]:
        query = search.query()
        if search.deadline is not None:
            query = self.board.risk_query(search.deadline, query)
        return [self.summary(t, user) for t in await self.store.search_tickets(query)]

    async def on_time(self, search: OnTimeSearch) -> OnTimeReport:
        """办理时效 from `since` to `until` (days, both inclusive): by default the last ON_TIME_DAYS up to today."""
        until = search.until or self.board.today()
        since = search.since or until - timedelta(days=ON_TIME_DAYS - 1)
        if since > until:
            raise OpsError(422, "invalid_request", f"since ({since}) must not be after until ({until})",
                           zh=f"起始日 since（{since}）不能晚于截止日 until（{until}）", field="since")
        if (until - since).days >= MAX_ON_TIME_DAYS:
            raise OpsError(422, "invalid_request", f"since to until spans at most {MAX_ON_TIME_DAYS} days",
                           zh=f"since 至 until 最多跨 {MAX_ON_TIME_DAYS} 天", field="since")
        return await self.board.on_time(since, until)

    async def ticket_by_reference(self, reference: str) -> str:
        """The ticket id a reference names: the gateway's id, a partner's source ticket number or the national
        registration number; 404 when none matches, 409 listing them when a number names several tickets."""
        if await self.store.get_ticket(reference) is not None:
            return reference
        for field, query in (("source_ticket_no", TicketQuery(source_ticket_no=reference, limit=10)),
                             ("national_registration_no", TicketQuery(national_registration_no=reference, limit=10))):
            found = await self.store.search_tickets(query)
            if len(found) == 1:
                return found[0].ticket_id
            if found:
                ids = ", ".join(f"{t.ticket_id} ({t.source.adapter_id})" for t in found)
                raise OpsError(409, "ambiguous_reference", f"{reference} is the {field} of several tickets: {ids}; "
                               "give the ticket id", zh=f"{reference} 对应多张工单：{ids}；请给出工单编号（ticket id）",
                               field="ticket_id")
        raise OpsError(404, "not_found", f"no ticket has the id, source ticket number or national registration "
                       f"number {reference} (tickets find searches by phone, respondent and more)",
                       zh=f"没有工单的编号、来源工单号或全国登记号是 {reference}"
                          "（可用 tickets find 按电话、被投诉方等查找）",
                       field="ticket_id")

    async def raw_payload(self, ticket_id: str, version: str | None, user: OpsUser) -> tuple[bytes, str]:
        """The payload one version of a ticket was taken from, as the partner sent it (operator: it holds personal
        data unmasked; audited). No version: the first."""
        require(user, Role.OPERATOR, "reading a raw payload")
        ticket = await self.store.get_ticket(ticket_id)
        if ticket is None:
            raise OpsError(404, "not_found", f"no ticket {ticket_id}", zh=f"找不到工单 {ticket_id}", field="ticket_id")
        versions = ticket.sender_updates.versions
        key: str | None = None
        if version is not None:
            found = next((v for v in versions if v.version == version), None)
            if found is None and version != ticket.source.source_version:
                raise OpsError(404, "not_found", f"ticket {ticket_id} has no version {version}",
                               zh=f"工单 {ticket_id} 没有版本 {version}", field="version")
            key = None if found is None or found is versions[0] else found.idempotency_key
        raw = await self.store.get_raw_payload(ticket_id, key)
        if raw is None:
            raise OpsError(404, "not_found", f"no raw payload is kept for version {version or '1'}",
                           zh=f"版本 {version or '1'} 没有保存原始报文", field="version")
        first = versions[0].version if versions else ticket.source.source_version
        await self.record(user, "ticket.raw", [ticket_id], {"version": version or first})
        return raw

    async def ticket_detail(self, ticket_id: str, user: OpsUser) -> TicketDetail:
        ticket = await self.store.get_ticket(ticket_id)
        if ticket is None:
            raise OpsError(404, "not_found", f"no ticket {ticket_id}", zh=f"找不到工单 {ticket_id}", field="ticket_id")
        masked = must_mask(ticket, user.role)
        receipts: list[DeliveryReceipt] = await self.store.list_deliveries(
            DeliveryFilter(ticket_id=ticket_id, limit=1000))
        deliveries: list[DeliveryDetail] = []
        for receipt in receipts:
            attempts: list[AttemptReceipt] = await self.store.list_attempts(receipt.delivery_id)
            if masked:
                attempts = [a.model_copy(update={"response_body": mask_text(a.response_body)})
                            if a.response_body else a for a in attempts]
            deliveries.append(DeliveryDetail(delivery=receipt, attempts=attempts, waits_for=waits_for(receipt,
                                                                                                    receipts)))
        audit = await self.store.list_audit(AuditQuery(ticket_id=ticket_id, limit=200))
        risk = self.board.risk_of(ticket)
        return TicketDetail(
            ticket=ticket_json(ticket, user.role), masked=masked,
            echo=await self.board.echo.of_ticket(ticket_id, self.clock()),
            deadline_risk=risk.risk if risk else None, due_on=risk.due_on if risk else None,
            deliveries=deliveries, timeline=timeline(ticket, deliveries, audit, masked),
            audit=[audit_view(e) for e in audit],
        )

    async def behind(self, search: EchoSearch, user: OpsUser) -> list[BehindTicket]:
        """Tickets whose partner has not heard their latest status for longer than echo.behind_after_seconds."""
        return await self.board.echo.behind(self.clock(), search.limit)

    # -- deliveries -------------------------------------------------------------------------------------
    async def deliveries(self, search: DeliverySearch, user: OpsUser) -> list[DeliveryReceipt]:
        found: list[DeliveryReceipt] = await self.store.list_deliveries(search.filter())
        return found

    async def replay(self, request: ReplayRequest, user: OpsUser) -> ReplayResult:
        """Dead deliveries back on their lanes and retrying ones due now, by id or by filter (audited); every
        delivery named or matched but left alone is explained."""
        require(user, Role.OPERATOR, "replaying deliveries")
        asked: list[DeliveryReceipt] = []
        if request.delivery_ids is not None:
            for delivery_id in request.delivery_ids:
                receipt = await self.store.get_delivery(delivery_id)
                if receipt is None:
                    raise OpsError(404, "not_found", f"no delivery {delivery_id}", zh=f"找不到投递 {delivery_id}",
                                   field="delivery_ids")
                asked.append(receipt)
            detail: dict[str, Any] = {"requested": list(request.delivery_ids)}
        else:
            assert request.filter is not None
            matched = await self.store.replay(request.filter.filter(), dry_run=True)
            asked = [r for r in [await self.store.get_delivery(i) for i in matched] if r is not None]
            detail = {"filter": request.filter.model_dump(mode="json", exclude_none=True)}
        # Each dead one takes along the dead deliveries queued behind it on its ticket's lane (its follow-ups).
        chosen = await with_followers(self.store, asked)
        ids: list[str] = await self.store.replay(delivery_ids=chosen, dry_run=request.dry_run)
        followers = [i for i in ids if i not in {a.delivery_id for a in asked}]
        if followers:
            detail["followers"] = followers
        receipts = [r for r in [await self.store.get_delivery(i) for i in ids] if r is not None]
        done = set(ids)
        left = [not_replayed(r) for r in [await self.store.get_delivery(a.delivery_id) or a for a in asked
                                          if a.delivery_id not in done]]
        ticket_ids = list(dict.fromkeys(r.ticket_id for r in receipts))
        detail.update({"delivery_ids": ids, "destinations": sorted({r.destination for r in receipts})})
        if left:
            detail["not_replayed"] = {n.delivery_id: n.reason for n in left}
        action = "replay.dry_run" if request.dry_run else "replay"
        audit_id = await self.record(user, action, ticket_ids, detail)
        if not request.dry_run and self.runtime.engine is not None:
            for destination in {r.destination for r in receipts}:
                self.runtime.engine.wake(destination)
        return ReplayResult(dry_run=request.dry_run, delivery_ids=ids, ticket_ids=ticket_ids, count=len(ids),
                            audit_id=audit_id, not_replayed=left)

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
                              resolved_ticket_id=item.resolved_ticket_id,
                              returned=item.returned,
                              times_seen=item.times_seen, last_seen_at=item.last_seen_at or item.received_at)

    async def quarantine(self, search: QuarantineSearch, user: OpsUser) -> list[QuarantineView]:
        items: list[QuarantinedPayload] = await self.store.list_quarantined(search.adapter_id, search.limit)
        return [self.quarantine_view(i, user) for i in items
                if search.include_resolved or i.resolved_ticket_id is None]

    async def remap(self, quarantine_id: str, user: OpsUser) -> RemapResult:
        """Map a quarantined payload again with the adapter's current spec; store it and resolve the entry."""
        require(user, Role.OPERATOR, "re-mapping quarantined payloads")
        item: QuarantinedPayload | None = await self.store.get_quarantined(quarantine_id)
        if item is None:
            raise OpsError(404, "not_found", f"no quarantined payload {quarantine_id}",
                           zh=f"隔离区中没有 {quarantine_id}", field="quarantine_id")
        if item.resolved_ticket_id is not None:
            return RemapResult(quarantine_id=quarantine_id, outcome="already_resolved",
                               ticket_id=item.resolved_ticket_id)
        if item.returned:  # the partner heard its 退单: the entry is closed
            return RemapResult(quarantine_id=quarantine_id, outcome="already_returned",
                               errors=masked_errors(item.errors, user.role))
        intake = self.runtime.intake
        if not intake.knows(item.adapter_id):
            raise OpsError(409, "unknown_adapter", f"adapter {item.adapter_id} has no mapping spec configured now",
                           zh=f"适配器 {item.adapter_id} 当前没有配置映射规则", field="adapter_id")
        detail: dict[str, Any] = {"quarantine_id": quarantine_id, "adapter_id": item.adapter_id}
        try:
            payload = payload_of(item.body, item.content_type)
        except PayloadError as err:
            await self.record(user, "quarantine.remap", [], {**detail, "error": str(err)}, outcome="unreadable")
            raise OpsError(422, "unreadable_payload", f"the kept payload cannot be read: {err}",
                           zh=f"保存的报文无法读取：{err}", field="quarantine_id") from err
        # The same path as a push (mapping, the jurisdiction screen, routing): a 退单 reaches the partner, a
        # ticket held for review is stored and waits for an operator; the payload stays in this entry otherwise.
        outcome = await intake.accept(item.adapter_id, payload, raw_body=item.body, content_type=item.content_type,
                                      kept=quarantine_id)
        errors = masked_errors(outcome.errors, user.role)
        if outcome.kind == "quarantined":
            audit_id = await self.record(user, "quarantine.remap", [],
                                         {**detail, "rules": sorted({e.rule for e in outcome.errors})},
                                         outcome="still_rejected")
            return RemapResult(quarantine_id=quarantine_id, outcome="still_rejected", errors=errors,
                               audit_id=audit_id)
        if outcome.kind == "returned":  # the spec's return rule, the jurisdiction screen or a routing rule: 退单
            assert outcome.returned is not None
            decision = outcome.decision
            audit_id = await self.record(user, "quarantine.remap", [], {
                **detail, "reason_code": outcome.returned.reason_code,
                **({"rule_id": decision.rule_id, "competent_authority": decision.competent_authority}
                   if decision is not None else {})}, outcome="returned")
            if self.runtime.engine is not None:
                self.runtime.engine.wake()  # the 退单 write-back is on the partner's callback lane
            return RemapResult(quarantine_id=quarantine_id, outcome="returned", audit_id=audit_id, errors=errors,
                               jurisdiction=decision)
        assert outcome.ticket_id is not None and outcome.kind in ("created", "repeat", "updated", "review")
        await self.store.resolve_quarantined(quarantine_id, outcome.ticket_id)
        audit_id = await self.record(user, "quarantine.remap", [outcome.ticket_id], {
            **detail, "kind": outcome.kind,
            **({"rule_id": outcome.decision.rule_id} if outcome.decision is not None else {})})
        if self.runtime.engine is not None and outcome.kind != "review":
            self.runtime.engine.wake()
        return RemapResult(quarantine_id=quarantine_id, outcome=outcome.kind, ticket_id=outcome.ticket_id,
                           audit_id=audit_id, jurisdiction=outcome.decision)

    # -- configuration ------------------------------------------------------------------------------------
    async def reload(self, user: OpsUser) -> ReloadResult:
        """Read adapters, mapping specs, routing, deadline rules, calendar and ops users again; apply what can be
        applied live (mapping, routing, deadlines, users) and name what needs a restart (transports, lanes)."""
        require(user, Role.ADMIN, "reloading configuration")
        try:
            new = await read_configuration(self.runtime, self.users_file)
        except Exception as err:  # every configuration error names its file, line and key
            await self.record(user, "config.reload", [], {"error": str(err)[:2000]}, outcome="invalid")
            raise OpsError(422, "invalid_configuration", str(err), zh=f"配置有误，未重新加载：{err}",
                           field="configuration") from err
        restart = restart_required(self.runtime.started_components, new.components, self.runtime.started_file,
                                   new.file, workers_apart=not self.runtime.settings.workers)
        # Nothing awaited from here to the last assignment: no request sees the runtime and users half swapped.
        self.runtime.reload(new.components)
        self.auth = new.auth
        self.restart_pending = restart
        audit_id = await self.record(user, "config.reload", [], {"restart_required": restart,
                                                                 "specs": sorted(new.components.specs)})
        return ReloadResult(reloaded=list(RELOADED), adapters=sorted(new.components.specs),
                            restart_required=restart, ops_users=len(new.auth.users), audit_id=audit_id)

    # -- the dashboard and metrics ------------------------------------------------------------------------
    async def dashboard(self, user: OpsUser, hours: float = 6.0) -> Dashboard:
        return await self.board.dashboard(hours)

    async def alerts(self, search: AlertSearch) -> list[AlertView]:
        found = await self.store.list_alerts(firing_only=search.state == "firing", limit=search.limit)
        return [AlertView(alert_id=a.alert_id, key=a.key, rule=a.rule, subject=a.subject, severity=a.severity,
                          state=a.state, summary=a.summary, count=a.count, peak=a.peak, started_at=a.started_at,
                          updated_at=a.updated_at, resolved_at=a.resolved_at, notices=a.notices,
                          details=list(a.details), owed=list(a.owed)) for a in found]

    async def chart(self, hours: float) -> Chart:
        return await self.board.chart(hours)

    async def refresh_metrics(self) -> None:
        """Set the gauges from the store and this process's engine and pollers, just before a scrape."""
        await self.board.refresh(self.metrics)


def payload_of(body: bytes, content_type: str) -> object:
    """A kept raw payload as the adapter handed it to intake: JSON as data, an XML record as a dict."""
    if "xml" in content_type.lower():
        root = parse_xml(body, content_type)
        return xml_to_dict(root)
    return parse_json_body(body, content_type)

