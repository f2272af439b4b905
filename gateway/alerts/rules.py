"""Alert rules: each looks at one part of the running gateway and says which conditions hold now (facts)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from gateway.alerts.config import (
    AlertsConfig,
    BreakerRule,
    DeadLettersRule,
    DueSoonRule,
    LaneWaitingRule,
    OverdueRule,
    PollerRule,
    QuarantineRule,
    SenderSilentRule,
    Severity,
)
from gateway.store import EchoStore, LaneStore, OpsLedger, PartnerEcho, Store, TicketStore
from gateway.tickets.deadlines import WorkingDayCalendar, china_date
from gateway.tickets.risk import Risk, risk_query

# How many of a condition's examples (ticket numbers, lanes) an alert carries.
EXAMPLES = 5


@dataclass(frozen=True)
class AlertFact:
    """A condition that holds now: one rule about one subject (a lane, an adapter, the tickets), with a count."""

    rule: str
    subject: str
    severity: Severity
    count: int
    summary: str  # one line for an operator, in Chinese
    details: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.subject}"


class AlertRule(Protocol):
    """A source of alerts. The monitor asks every rule each round; a fact found is an alert firing (or still
    firing, with its count), a fact no longer found resolves its alert. A new source (e.g. the sender's echo:
    a partner not hearing back past a threshold) is one more class with these three members."""

    @property
    def name(self) -> str: ...

    @property
    def produces(self) -> tuple[str, ...]: ...  # the rule names of its facts: while it fails, they stay as they are

    async def facts(self, now: datetime) -> Sequence[AlertFact]: ...


# -- what the rules read from the running gateway (given by the composition root) -------------------------

class BreakerView(Protocol):
    @property
    def state(self) -> str: ...  # "closed", "open" or "half_open"

    @property
    def times_opened(self) -> int: ...


class PollerView(Protocol):
    @property
    def consecutive_failures(self) -> int: ...

    @property
    def last_error(self) -> str | None: ...


BreakerStates = Callable[[], Mapping[str, BreakerView]]
PollerStates = Callable[[], Mapping[str, PollerView]]
DeadlineBasis = Callable[[], tuple[WorkingDayCalendar, int]]  # the calendar in force, due-soon working days


CALLBACK_PREFIX = "callback:"
_UNDELIVERED = ("pending", "retrying", "in_flight")


def waited(seconds: float) -> str:
    """A wait as an operator reads it: 分钟 up to two hours, then 小时."""
    minutes = int(seconds // 60)
    return f"{minutes} 分钟" if minutes < 120 else f"{seconds / 3600:.1f} 小时"


class LaneFacts:
    """Lanes holding dead letters, and lanes whose oldest undelivered delivery waits too long. From the store's
    counts: every process's lanes."""

    name = "lanes"
    produces = ("dead_letters", "lane_waiting")

    def __init__(self, store: LaneStore, dead_letters: DeadLettersRule, waiting: LaneWaitingRule) -> None:
        self._store, self._dead, self._waiting = store, dead_letters, waiting

    async def facts(self, now: datetime) -> list[AlertFact]:
        found = []
        for lane, counts in sorted((await self._store.lane_stats()).items()):
            dead = int(counts.get("dead", 0))
            if self._dead.enabled and dead >= self._dead.min_count:
                found.append(AlertFact("dead_letters", lane, self._dead.severity, dead,
                                       f"通道 {lane} 有 {dead} 条死信：投递已放弃，等待重放"))
            age = float(counts.get("oldest_waiting_age_s", 0.0))
            undelivered = int(sum(counts.get(state, 0) for state in _UNDELIVERED))
            if self._waiting.enabled and undelivered:
                fact = self._waiting_fact(lane, age, undelivered)
                if fact is not None:
                    found.append(fact)
        return found

    def _waiting_fact(self, lane: str, age: float, undelivered: int) -> AlertFact | None:
        if lane.startswith(CALLBACK_PREFIX) or age <= self._waiting.older_than:  # callbacks: SilentPartners
            return None
        return AlertFact("lane_waiting", lane, self._waiting.severity, undelivered,
                         f"通道 {lane} 最早一条未送达的投递已等待 {waited(age)}（{undelivered} 条未送达）")


class OpenBreakers:
    """Lanes whose circuit breaker (in this process) is open or probing."""

    name = "breaker_open"
    produces = (name,)

    def __init__(self, breakers: BreakerStates, config: BreakerRule) -> None:
        self._breakers, self._config = breakers, config

    async def facts(self, now: datetime) -> list[AlertFact]:
        found = []
        for lane, breaker in sorted(self._breakers().items()):
            if breaker.state in ("open", "half_open"):
                probing = "，正在试探" if breaker.state == "half_open" else ""
                found.append(AlertFact(self.name, lane, self._config.severity, breaker.times_opened,
                                       f"通道 {lane} 熔断已打开{probing}：接收方持续失败，暂停投递"))
        return found


class FailingPollers:
    """Pulling adapters whose poller failed N times in a row (in this process)."""

    name = "poller_failing"
    produces = (name,)

    def __init__(self, pollers: PollerStates, config: PollerRule) -> None:
        self._pollers, self._config = pollers, config

    async def facts(self, now: datetime) -> list[AlertFact]:
        return [AlertFact(self.name, adapter_id, self._config.severity, poller.consecutive_failures,
                          f"接口 {adapter_id} 拉取工单连续失败 {poller.consecutive_failures} 次",
                          (poller.last_error[:200],) if poller.last_error else ())
                for adapter_id, poller in sorted(self._pollers().items())
                if poller.consecutive_failures >= self._config.consecutive_failures]


class GrowingQuarantine:
    """Adapters with many payloads in quarantine (could not be mapped, not yet re-mapped)."""

    name = "quarantine_growing"
    produces = (name,)

    def __init__(self, store: OpsLedger, adapter_ids: Callable[[], Sequence[str]], config: QuarantineRule) -> None:
        self._store, self._adapter_ids, self._config = store, adapter_ids, config

    async def facts(self, now: datetime) -> list[AlertFact]:
        stats = await self._store.intake_stats(list(self._adapter_ids()))
        return [AlertFact(self.name, adapter_id, self._config.severity, n,
                          f"接口 {adapter_id} 有 {n} 件报文未能映射，隔离待处理")
                for adapter_id, counts in sorted(stats.items())
                if (n := counts.get("quarantine_open", 0)) >= self._config.min_open]


class SilentPartners:
    """Partners not hearing back: tickets whose newest status has not reached their originating partner for longer
    than `behind_after()` seconds (the sender's echo, kept by the store), one alert per partner, the tickets longest
    behind as examples."""

    name = "sender_silent"
    produces = (name,)
    LIMIT = 1000  # tickets read per round; a partner with more is told "at least" this many

    def __init__(self, store: EchoStore, behind_after: Callable[[], float], config: SenderSilentRule) -> None:
        self._store, self._behind_after, self._config = store, behind_after, config

    async def facts(self, now: datetime) -> list[AlertFact]:
        after = self._behind_after()
        by_partner: dict[str, list[PartnerEcho]] = {}
        for echo in await self._store.list_behind(now - timedelta(seconds=after), limit=self.LIMIT):
            by_partner.setdefault(echo.destination.removeprefix(CALLBACK_PREFIX), []).append(echo)
        return [AlertFact(self.name, partner, self._config.severity, len(echoes),
                          f"接口 {partner} 有 {len(echoes)} 件工单的最新状态超过 {waited(after)} 未送达："
                          "来源系统未收到回音",
                          tuple(e.ticket_id for e in echoes[:EXAMPLES]))
                for partner, echoes in sorted(by_partner.items()) if len(echoes) >= self._config.min_count]


class DeadlineRisks:
    """Open tickets past a statutory time limit (one alert), or due soon (another): counted by the store's index of
    due days, the most pressing ones' numbers as examples."""

    name = "deadlines"
    produces = ("ticket_overdue", "ticket_due_soon")

    def __init__(self, store: TicketStore, basis: DeadlineBasis, overdue: OverdueRule, due_soon: DueSoonRule) -> None:
        self._store, self._basis = store, basis
        self._overdue, self._due_soon = overdue, due_soon

    async def facts(self, now: datetime) -> list[AlertFact]:
        calendar, within = self._basis()
        today = china_date(now)
        found = []
        checks: tuple[tuple[Risk, OverdueRule | DueSoonRule, str], ...] = (
            ("overdue", self._overdue, "ticket_overdue"), ("due_soon", self._due_soon, "ticket_due_soon"))
        for risk, rule, name in checks:
            if not rule.enabled:
                continue
            query = risk_query(risk, today, calendar, due_soon_within=within)
            count = await self._store.count_tickets(query)
            if count < rule.min_count:
                continue
            pressing = await self._store.search_tickets(replace(query, order="due", limit=EXAMPLES))
            summary = (f"{count} 件工单已超过法定时限" if risk == "overdue"
                       else f"{count} 件工单将在 {within} 个工作日内到期")
            found.append(AlertFact(name, "tickets", rule.severity, count, summary,
                                   tuple(t.source.source_ticket_no for t in pressing)))
        return found


def standard_rules(config: AlertsConfig, store: Store, *, breakers: BreakerStates, pollers: PollerStates,
                   adapter_ids: Callable[[], Sequence[str]], deadline_basis: DeadlineBasis,
                   echo_behind_after: Callable[[], float]) -> list[AlertRule]:
    """The rules alerts.yaml enables, reading the running gateway through the given views."""
    rules = config.rules
    found: list[AlertRule] = []
    if rules.dead_letters.enabled or rules.lane_waiting.enabled:
        found.append(LaneFacts(store, rules.dead_letters, rules.lane_waiting))
    if rules.sender_silent.enabled:
        found.append(SilentPartners(store, echo_behind_after, rules.sender_silent))
    if rules.breaker_open.enabled:
        found.append(OpenBreakers(breakers, rules.breaker_open))
    if rules.poller_failing.enabled:
        found.append(FailingPollers(pollers, rules.poller_failing))
    if rules.quarantine_growing.enabled:
        found.append(GrowingQuarantine(store, adapter_ids, rules.quarantine_growing))
    if rules.ticket_overdue.enabled or rules.ticket_due_soon.enabled:
        found.append(DeadlineRisks(store, deadline_basis, rules.ticket_overdue, rules.ticket_due_soon))
    return found
