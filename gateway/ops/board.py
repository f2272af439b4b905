"""The dashboard's figures: lanes and their circuits, adapters, deadline risks and the chart, read when asked."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from contracts.delivery import DeliveryReceipt, DeliveryState
from contracts.ticket import Ticket
from gateway.delivery.breaker import BreakerState
from gateway.ops.chart import Chart, chart_of
from gateway.ops.counts import MinuteCounts
from gateway.ops.echo import EchoBoard
from gateway.ops.metrics import OpsMetrics
from gateway.ops.risk import DeadlineRisk, deadline_risk
from gateway.ops.views import AdapterRow, Dashboard, LaneRow, RiskRow
from gateway.runtime import Runtime
from gateway.store.base import DeliveryFilter, TicketQuery

# Deadline risk is found by reading the newest tickets (there is no index of due dates yet): how many, how often.
RISK_SCAN_LIMIT = 2000
RISK_CACHE_SECONDS = 30.0


class Board:
    """What the dashboard and the metrics' gauges show, from the store and this process's engine and pollers."""

    def __init__(self, runtime: Runtime, counts: MinuteCounts, clock: Callable[[], datetime]) -> None:
        self.runtime = runtime
        self.counts = counts
        self.clock = clock
        self._risk: tuple[float, list[tuple[Ticket, DeadlineRisk]]] | None = None
        self.echo = EchoBoard(runtime)

    def risk_of(self, ticket: Ticket) -> DeadlineRisk | None:
        settings = self.runtime.settings
        return deadline_risk(ticket, self.clock(), self.runtime.components.calendar,
                             due_soon_within=settings.deadlines.due_soon_working_days)

    def forget_risks(self) -> None:
        """After a reload: risks are found again under the new deadline rules and calendar."""
        self._risk = None

    async def risks(self) -> list[tuple[Ticket, DeadlineRisk]]:
        """Open tickets at risk among the newest RISK_SCAN_LIMIT, most pressing first; cached briefly."""
        now = time.monotonic()
        if self._risk is not None and now - self._risk[0] < RISK_CACHE_SECONDS:
            return self._risk[1]
        found: list[tuple[Ticket, DeadlineRisk]] = []
        for ticket in await self.runtime.store.search_tickets(TicketQuery(limit=RISK_SCAN_LIMIT)):
            risk = self.risk_of(ticket)
            if risk is not None:
                found.append((ticket, risk))
        found.sort(key=lambda p: (p[1].risk != "overdue", p[1].due_on))
        self._risk = (now, found)
        return found

    def breakers(self) -> dict[str, str]:
        engine = self.runtime.engine
        if engine is None:
            return {}
        return {name: (lane.breaker.state.value if lane.breaker is not None else "none")
                for name, lane in engine.status().items()}

    async def lanes(self) -> list[LaneRow]:
        stats: dict[str, dict[str, float]] = await self.runtime.store.lane_stats()
        breakers = self.breakers()
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

    async def dashboard(self, hours: float = 6.0) -> Dashboard:
        lanes = await self.lanes()
        by_lane = {row.destination: row for row in lanes}
        configs = self.runtime.components.adapter_configs
        adapter_ids = sorted(configs)
        stats: dict[str, dict[str, int]] = await self.runtime.store.intake_stats(adapter_ids)
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
        dead: list[DeliveryReceipt] = await self.runtime.store.list_deliveries(
            DeliveryFilter(state=DeliveryState.DEAD, limit=50))
        now = self.clock()
        behind = await self.echo.behind(now, self.runtime.settings.echo.panel_limit)
        behind_count = await self.echo.count(now)
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
                         dead=list(reversed(dead)), chart=chart, totals=totals, behind=behind,
                         behind_count=behind_count,
                         behind_after_s=self.runtime.settings.echo.behind_after_seconds)

    async def chart(self, hours: float) -> Chart:
        return chart_of(await self.counts.read(hours), self.clock(), hours)

    async def refresh(self, metrics: OpsMetrics) -> None:
        """Set the gauges from the store and this process's engine and pollers, just before a scrape."""
        metrics.set_lanes(await self.runtime.store.lane_stats())
        breakers = self.breakers()
        metrics.set_breakers({name: BreakerState(s) for name, s in breakers.items() if s != "none"})
        risks = await self.risks()
        metrics.set_risk(sum(1 for _, r in risks if r.risk == "overdue"),
                         sum(1 for _, r in risks if r.risk == "due_soon"))
        stats: dict[str, dict[str, int]] = await self.runtime.store.intake_stats(
            sorted(self.runtime.components.adapter_configs))
        metrics.set_quarantine({a: s["quarantine_open"] for a, s in stats.items()})
        metrics.echo_behind.set(await self.echo.count(self.clock()))
        if self.runtime.pollers is not None:
            metrics.set_pollers({a: p.consecutive_failures for a, p in self.runtime.pollers.status().items()})
