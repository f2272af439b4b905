"""The alert monitor: every round, asks the rules what holds, keeps one alert per condition, and sends what changed
to the channels through their delivery lanes (durable, retried), grouped and rate-limited."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from contracts.delivery import DeliveryKind, OutboxEntry
from contracts.ulids import new_ulid
from gateway.alerts.config import AlertsConfig
from gateway.alerts.notices import AlertChange, AnyChannel, Change, render
from gateway.alerts.rules import AlertFact, AlertRule
from gateway.store import AlertRecord, Store

log = logging.getLogger(__name__)

LOCK = "alerts"  # one monitor per store evaluates and sends; the others stand by
STORE_RULE = "store_unreachable"
RECENT_RESOLVED = 200  # resolved alerts looked at for channels still owed their resolution
HEALTH_TIMEOUT = 10.0  # a store check not answered by then is a failed one (a network that drops packets)


# Called with a channel's name and the changes of each message enqueued for it (metrics).
MessageListener = Callable[[str, Sequence[AlertChange]], None]


@dataclass
class StoreOutage:
    """The store failing its checks, as this process saw it; told once the store can take the alert again."""

    since: datetime
    failed_checks: int = 0
    last_error: str = ""


class ChannelWindow:
    """A channel's rate limit: at most `max_messages` sent in any `per` seconds (this process's memory)."""

    def __init__(self, max_messages: int, per: float, clock: Callable[[], float]) -> None:
        self._max, self._per, self._clock = max_messages, per, clock
        self._sent: deque[float] = deque()

    def allows(self) -> bool:
        now = self._clock()
        while self._sent and now - self._sent[0] >= self._per:
            self._sent.popleft()
        return len(self._sent) < self._max

    def count(self) -> None:
        self._sent.append(self._clock())


class AlertMonitor:
    """Evaluates the rules every `evaluate_every`, in the one process holding the `alerts` lock of the store."""

    def __init__(self, config: AlertsConfig, store: Store, rules: Sequence[AlertRule], *, region: str,
                 owner: str, clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 monotonic: Callable[[], float] = time.monotonic,
                 enqueued: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.store = store
        self.rules = list(rules)
        self.region = region
        self.owner = owner
        self.clock = clock
        self.listeners: list[MessageListener] = []
        self.outage: StoreOutage | None = None
        self.leading = False
        self.rounds = 0
        self.rule_errors: Counter[str] = Counter()
        self._enqueued = enqueued
        self._channels: dict[str, AnyChannel] = {c.name: c for c in config.channels}
        self._windows = {c.name: ChannelWindow(c.rate_limit.max_messages, c.rate_limit.per, monotonic)
                         for c in config.channels}
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- life ------------------------------------------------------------------------------------------
    def start(self) -> None:
        self._stopping.clear()
        self._task = asyncio.create_task(self._run(), name="alert-monitor")

    async def stop(self) -> None:
        self._stopping.set()
        self._wake.set()
        if self._task is not None:
            # A round under way ends first; one stuck on a store that does not answer is cancelled.
            _, stuck = await asyncio.wait({self._task}, timeout=HEALTH_TIMEOUT)
            for task in stuck:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            self._task = None
        if self.leading:
            with contextlib.suppress(Exception):
                await self.store.release_lock(LOCK, self.owner)

    def wake(self) -> None:
        """Evaluate now (a delivery was dead-lettered), not at the next round."""
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                await self.evaluate()
            except Exception:  # a bug or a store failure mid-round: the next round tries again
                log.exception("alert round failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.config.evaluate_every)

    # -- one round -------------------------------------------------------------------------------------
    async def evaluate(self) -> None:
        """One round: check the store, take the lock, find the facts, update the alerts, send what changed."""
        self.rounds += 1
        now = self.clock()
        if not await self._store_reachable(now):
            return
        ttl = max(3 * self.config.evaluate_every, 10.0)
        self.leading = await self.store.try_lock(LOCK, self.owner, ttl)
        if not self.leading:
            self.outage = None  # the monitor holding the lock tells of the outage, as it saw it
            return
        changed: dict[str, AlertRecord] = {}
        if self.outage is not None:
            told = self._outage_alert(self.outage, now)
            self.outage = None
            if told is not None:
                changed[told.alert_id] = told
        facts, failing = await self._facts(now)
        firing = {a.key: a for a in await self.store.list_alerts(firing_only=True, limit=1000)}
        for key, fact in facts.items():
            record = self._fired_or_updated(firing.get(key), fact, now)
            changed[record.alert_id] = record
        for key, alert in firing.items():
            if key in facts:
                continue
            if alert.rule in failing:
                changed[alert.alert_id] = replace(alert, last_seen_at=now)
            elif now - alert.last_seen_at >= timedelta(seconds=self.config.resolve_after):
                changed[alert.alert_id] = self._changed(replace(alert, state="resolved", resolved_at=now),
                                                        "resolved", now)
        owed = [a for a in await self.store.list_alerts(limit=RECENT_RESOLVED)
                if a.owed and a.alert_id not in changed]
        for alert in [*changed.values(), *owed]:
            changed[alert.alert_id] = alert
        for alert in await self._send(list(changed.values()), now):
            changed[alert.alert_id] = alert
        for alert in changed.values():
            await self.store.save_alert(alert)

    async def _store_reachable(self, now: datetime) -> bool:
        try:
            async with asyncio.timeout(HEALTH_TIMEOUT):
                health = await self.store.health()
            reachable = health.get("reachable", True) is not False
            error = "" if reachable else str(health.get("warnings") or "unreachable")
        except Exception as err:
            reachable, error = False, f"{type(err).__name__}: {err}"
        if reachable:
            return True
        if self.outage is None:
            self.outage = StoreOutage(since=now)
        self.outage.failed_checks += 1
        self.outage.last_error = error[:200]
        log.error("the store cannot be reached; alerts wait for it",
                  extra={"failed_checks": self.outage.failed_checks, "error": self.outage.last_error})
        return False

    def _outage_alert(self, outage: StoreOutage, now: datetime) -> AlertRecord | None:
        rule = self.config.rules.store_unreachable
        if not rule.enabled or outage.failed_checks < rule.failed_checks:
            return None
        alert = AlertRecord(
            alert_id=new_ulid(), key=f"{STORE_RULE}:store", rule=STORE_RULE, subject="store",
            severity=rule.severity, state="resolved",
            summary=f"存储曾无法访问：连续 {outage.failed_checks} 次检查失败（期间告警无法记录与发送）",
            count=outage.failed_checks, peak=outage.failed_checks, started_at=outage.since, updated_at=now,
            last_seen_at=now, resolved_at=now, details=(outage.last_error,) if outage.last_error else ())
        return self._changed(alert, "resolved", now)

    async def _facts(self, now: datetime) -> tuple[dict[str, AlertFact], set[str]]:
        """Every rule's facts, and the rule names of those failing this round (their alerts stay as they are:
        a rule that cannot look cannot say a condition is gone)."""
        facts: dict[str, AlertFact] = {}
        failing: set[str] = set()
        for rule in self.rules:
            try:
                found = list(await rule.facts(now))
            except Exception:
                self.rule_errors[rule.name] += 1
                log.exception("alert rule failed; its alerts stay as they were", extra={"rule": rule.name})
                failing |= set(rule.produces)
                continue
            facts.update((f.key, f) for f in found)
        return facts, failing

    def _fired_or_updated(self, alert: AlertRecord | None, fact: AlertFact, now: datetime) -> AlertRecord:
        if alert is None:
            fresh = AlertRecord(alert_id=new_ulid(), key=fact.key, rule=fact.rule, subject=fact.subject,
                                severity=fact.severity, state="firing", summary=fact.summary, count=fact.count,
                                peak=fact.count, started_at=now, updated_at=now, last_seen_at=now,
                                details=fact.details)
            return self._changed(fresh, "fired", now)
        updated = replace(alert, severity=fact.severity, summary=fact.summary, count=fact.count,
                          peak=max(alert.peak, fact.count), details=fact.details, last_seen_at=now,
                          updated_at=now if fact.count != alert.count else alert.updated_at)
        told_at = alert.notified_at or alert.started_at
        if (fact.count > (alert.notified_count or 0)
                and now - told_at >= timedelta(seconds=self.config.repeat_after)):
            return self._changed(updated, "grew", now)
        return updated

    def _changed(self, base: AlertRecord, change: Change, now: datetime) -> AlertRecord:
        """The alert after a change to tell: every channel that wants it is owed the change."""
        owed = tuple(c.name for c in self._channels.values() if c.wants(base.rule, base.severity))
        log.warning("alert %s", change, extra={"alert_id": base.alert_id, "key": base.key, "count": base.count,
                                                 "summary": base.summary})
        return replace(base, updated_at=now, notified_at=now, notified_count=base.count, notices=base.notices + 1,
                       owed=tuple(sorted(set(base.owed) | set(owed))))

    async def _send(self, alerts: list[AlertRecord], now: datetime) -> list[AlertRecord]:
        """One message per channel owed something, as its rate limit allows; the alerts with what was sent."""
        # A channel no longer configured is owed nothing.
        result = {a.alert_id: replace(a, owed=tuple(o for o in a.owed if o in self._channels)) for a in alerts}
        for name, channel in self._channels.items():
            due = sorted((a for a in result.values() if name in a.owed), key=lambda a: (a.state, a.started_at))
            if not due or not self._windows[name].allows():
                continue
            changes = [AlertChange(a, "resolved" if a.state == "resolved" else "fired" if a.notices <= 1 else "grew")
                       for a in due]
            body, content_type = render(channel, self.region, changes, now)
            message_id = new_ulid()
            await self.store.enqueue(f"alerts:{name}", message_id, [OutboxEntry(
                destination=channel.lane, kind=DeliveryKind.ALERT, body=body, content_type=content_type,
                idempotency_key=f"alert-message:{message_id}")])
            self._windows[name].count()
            for a in due:
                result[a.alert_id] = replace(a, owed=tuple(o for o in a.owed if o != name))
            if self._enqueued is not None:
                self._enqueued(channel.lane)
            for listener in self.listeners:
                try:
                    listener(name, changes)
                except Exception:
                    log.exception("alert message listener failed")
        return list(result.values())
