"""The dashboard's figures: lanes and their circuits, adapters, deadline risks and the chart, read when asked."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

from adapters.secrets import credential_sources
from contracts.delivery import DeliveryReceipt, DeliveryState
from contracts.ticket import Ticket
from gateway.delivery.breaker import BreakerState
from gateway.ops.chart import Chart, chart_of
from gateway.ops.counts import MinuteCounts
from gateway.ops.echo import EchoBoard
from gateway.ops.metrics import OpsMetrics
from gateway.ops.on_time import OnTimeReport, on_time_report
from gateway.ops.schemas import DeadlineFilter
from gateway.ops.views import AdapterRow, Dashboard, LaneRow, RiskRow
from gateway.runtime import Runtime
from gateway.store.base import DeliveryFilter, TicketQuery
from gateway.tickets.deadlines import china_date
from gateway.tickets.risk import DeadlineRisk, deadline_risk, risk_query

# The dashboard's list of tickets at risk, most pressing first; its counts cover them all.
RISK_ROWS = 50
# The dashboard's on-time rates cover the days up to today.
ON_TIME_DAYS = 30


class Board:
    """What the dashboard and the metrics' gauges show, from the store and this process's engine and pollers."""

    def __init__(self, runtime: Runtime, counts: MinuteCounts, clock: Callable[[], datetime]) -> None:
        self.runtime = runtime
        self.counts = counts
        self.clock = clock
        self.echo = EchoBoard(runtime)

    def risk_of(self, ticket: Ticket) -> DeadlineRisk | None:
        settings = self.runtime.settings
        return deadline_risk(ticket, self.clock(), self.runtime.components.calendar,
                             due_soon_within=settings.deadlines.due_soon_working_days)

    def today(self) -> date:
        return china_date(self.clock())

    def risk_query(self, risk: DeadlineFilter, query: TicketQuery | None = None) -> TicketQuery:
        """`query` narrowed to the tickets whose most pressing running limit is overdue, due soon, or either."""
        return risk_query(risk, self.today(), self.runtime.components.calendar,
                          due_soon_within=self.runtime.settings.deadlines.due_soon_working_days, query=query)

    async def risks(self, limit: int = RISK_ROWS) -> list[tuple[Ticket, DeadlineRisk]]:
        """Open tickets at risk, most pressing first (overdue before due soon, earliest due first), from the
        store's index of due days."""
        found: list[tuple[Ticket, DeadlineRisk]] = []
        for ticket in await self.runtime.store.search_tickets(self.risk_query("at_risk", TicketQuery(
                order="due", limit=limit))):
            risk = self.risk_of(ticket)
            if risk is not None:
                found.append((ticket, risk))
        return found

    async def risk_counts(self) -> tuple[int, int]:
        """How many tickets are overdue, and how many due soon."""
        store = self.runtime.store
        return (await store.count_tickets(self.risk_query("overdue")),
                await store.count_tickets(self.risk_query("due_soon")))

    async def on_time(self, since: date | None = None, until: date | None = None) -> OnTimeReport:
        """办理时效 over the days given (both inclusive), by default the last ON_TIME_DAYS days up to today."""
        until = until or self.today()
        since = since or until - timedelta(days=ON_TIME_DAYS - 1)
        return on_time_report(await self.runtime.store.on_time_counts(since, until), since, until)

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
        settings = self.runtime.settings
        generates = settings.demo.generate_credentials or settings.demo.simulators  # as create_app decides
        adapters = []
        for adapter_id in adapter_ids:
            config, s = configs[adapter_id], stats.get(adapter_id, {})
            adapters.append(AdapterRow(
                adapter_id=adapter_id, description=config.description, kind=config.kind, enabled=config.enabled,
                received=s.get("tickets", 0) + s.get("quarantine_open", 0) + s.get("returned", 0),
                mapped=s.get("tickets", 0), quarantined=s.get("quarantine_open", 0),
                quarantined_total=s.get("quarantined", 0), returned=s.get("returned", 0),
                callback=by_lane.get(f"callback:{adapter_id}"), poller=pollers.get(adapter_id),
                credentials=credential_sources(config, settings.resolved_data_dir, generate=generates),
            ))
        destinations = [row for row in lanes if not row.destination.startswith("callback:")]
        at_risk = [RiskRow(ticket_id=t.ticket_id, source_ticket_no=t.source.source_ticket_no,
                           adapter_id=t.source.adapter_id, status=t.lifecycle.status.value, risk=r.risk,
                           kind=r.deadline.kind, due_on=r.due_on.isoformat(), handler=t.routing.handler_org_name)
                   for t, r in await self.risks()]
        overdue, due_soon = await self.risk_counts()
        dead: list[DeliveryReceipt] = await self.runtime.store.list_deliveries(
            DeliveryFilter(state=DeliveryState.DEAD, limit=50))
        now = self.clock()
        behind = await self.echo.behind(now, self.runtime.settings.echo.panel_limit)
        behind_count = await self.echo.count(now)
        chart = await self.chart(hours)
        alerts = await self.runtime.store.list_alerts(firing_only=True)
        totals = {
            "undelivered": sum(r.undelivered for r in lanes), "dead": sum(r.dead for r in lanes),
            "delivered": sum(r.delivered for r in lanes), "quarantined": sum(a.quarantined for a in adapters),
            "received": sum(a.received for a in adapters),
        }
        return Dashboard(generated_at=self.clock(), region=self.runtime.settings.region.name, adapters=adapters,
                         destinations=destinations, at_risk=at_risk, overdue=overdue, due_soon=due_soon,
                         dead=list(reversed(dead)), chart=chart, on_time=await self.on_time(), totals=totals,
                         alerts=alerts, behind=behind, behind_count=behind_count,
                         behind_after_s=self.runtime.settings.echo.behind_after_seconds)

    async def chart(self, hours: float) -> Chart:
        return chart_of(await self.counts.read(hours), self.clock(), hours)

    async def refresh(self, metrics: OpsMetrics) -> None:
        """Set the gauges from the store and this process's engine and pollers, just before a scrape."""
        metrics.set_lanes(await self.runtime.store.lane_stats())
        breakers = self.breakers()
        metrics.set_breakers({name: BreakerState(s) for name, s in breakers.items() if s != "none"})
        metrics.set_risk(*await self.risk_counts())
        stats: dict[str, dict[str, int]] = await self.runtime.store.intake_stats(
            sorted(self.runtime.components.adapter_configs))
        metrics.set_quarantine({a: s["quarantine_open"] for a, s in stats.items()})
        monitor = self.runtime.alerts
        metrics.set_alerts(await self.runtime.store.list_alerts(firing_only=True, limit=1000),
                           monitor.outage.failed_checks if monitor is not None and monitor.outage else 0)
        metrics.echo_behind.set(await self.echo.count(self.clock()))
        if self.runtime.pollers is not None:
            metrics.set_pollers({a: p.consecutive_failures for a, p in self.runtime.pollers.status().items()})
