"""The monitor's rounds on a real store, with a rule plugged in through the AlertRule interface (as a new source,
e.g. the sender's echo, would be) and a clock the test moves: repeats, failing rules, owed channels."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from contracts.delivery import DeliveryKind, OutboxEntry, ReportedStatus
from gateway.alerts import AlertFact, AlertMonitor, AlertsConfig
from gateway.alerts.config import Rules
from gateway.alerts.rules import SilentPartners
from gateway.store import Store
from gateway.store.sqlite import SqliteStore
from tests.ops.ops_support import PHONE_KEY
from tests.store.conformance.conformance_support import RAW
from tests.store.store_support import attempt, make_ticket, national

CONFIG = AlertsConfig.model_validate({
    "evaluate_every": "1m", "resolve_after": "2m", "repeat_after": "1h",
    "channels": [{"name": "ops-webhook", "kind": "webhook", "url": "http://127.0.0.1:9/hooks",
                  "secret_env": "UNUSED_HERE"}]})


class ScriptedSilence:
    """A source of alerts scripted by the test, shaped as the sender's echo source is: partners that have not heard
    back past a threshold."""

    name = "sender_silent"
    produces = ("sender_silent",)

    def __init__(self) -> None:
        self.silent: dict[str, int] = {}
        self.broken = False

    async def facts(self, now: datetime) -> Sequence[AlertFact]:
        if self.broken:
            raise ConnectionError("the echo index cannot be read")
        return [AlertFact("sender_silent", partner, "warning", n, f"{partner} 已有 {n} 件工单超过 2 小时未收到回音")
                for partner, n in self.silent.items()]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 12, 6, 2, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


async def _messages(store: Store) -> list[dict[str, object]]:
    """The messages waiting on the channel's lane, read as its sender would, and settled as delivered (a channel's
    next message waits behind an earlier one still on its lane)."""
    claims = await store.claim("alert:ops-webhook", "test-reader", 30, limit=50)
    for claim in claims:
        await store.settle_delivered(claim, attempt(claim))
    return [json.loads(c.body) for c in claims]


def _changes(messages: list[dict[str, object]]) -> list[tuple[str, int]]:
    return [(c["change"], c["count"]) for m in messages for c in m["data"]["changes"]]  # type: ignore[index]


async def _monitor(tmp: Path) -> tuple[AlertMonitor, ScriptedSilence, Clock, SqliteStore]:
    store = SqliteStore(tmp / "gateway.db", PHONE_KEY)
    await store.open()
    rule, clock = ScriptedSilence(), Clock()
    return AlertMonitor(CONFIG, store, [rule], region="黔东南", owner="test", clock=clock), rule, clock, store


async def test_a_growing_count_is_sent_again_only_after_repeat_after(tmp_path: Path) -> None:
    monitor, rule, clock, store = await _monitor(tmp_path)
    rule.silent = {"city-12345-rest": 2}
    await monitor.evaluate()
    rule.silent = {"city-12345-rest": 5}
    clock.advance(minutes=30)
    await monitor.evaluate()
    assert _changes(await _messages(store)) == [("fired", 2)]

    clock.advance(minutes=31)
    await monitor.evaluate()
    assert _changes(await _messages(store)) == [("grew", 5)]
    clock.advance(hours=2)
    await monitor.evaluate()  # the same count: nothing new to tell
    assert await _messages(store) == []
    await store.close()


async def test_a_failing_rule_keeps_its_alerts_firing_even_after_a_restart(tmp_path: Path) -> None:
    monitor, rule, clock, store = await _monitor(tmp_path)
    rule.silent = {"legacy-registration": 1}
    await monitor.evaluate()
    assert _changes(await _messages(store)) == [("fired", 1)]
    await store.close()

    restarted, rule, clock, store = await _monitor(tmp_path)
    rule.broken = True
    clock.advance(hours=1)
    await restarted.evaluate()
    assert [a.key for a in await store.list_alerts(firing_only=True)] == ["sender_silent:legacy-registration"]
    assert restarted.rule_errors["sender_silent"] == 1

    rule.broken = False  # it can look again, and the condition is gone: resolved after resolve_after
    await restarted.evaluate()
    assert await store.list_alerts(firing_only=True) != []
    clock.advance(minutes=3)
    await restarted.evaluate()
    assert await store.list_alerts(firing_only=True) == []
    [resolved] = await store.list_alerts()
    assert (resolved.state, resolved.peak) == ("resolved", 1)
    assert _changes(await _messages(store)) == [("resolved", 1)]  # and nothing in between
    await store.close()


async def test_a_round_groups_every_change_into_one_message_per_channel(tmp_path: Path) -> None:
    monitor, rule, _, store = await _monitor(tmp_path)
    rule.silent = {"city-12345-rest": 1, "legacy-registration": 3, "enforcement-case": 2}
    await monitor.evaluate()
    [message] = await _messages(store)
    assert sorted(c["subject"] for c in message["data"]["changes"]) == [  # type: ignore[index]
        "city-12345-rest", "enforcement-case", "legacy-registration"]
    await store.close()


async def test_a_channel_taken_out_of_the_configuration_is_owed_nothing_any_more(tmp_path: Path) -> None:
    limited = CONFIG.model_copy(update={"channels": (CONFIG.channels[0].model_copy(
        update={"rate_limit": CONFIG.channels[0].rate_limit.model_copy(update={"max_messages": 1})}),)})
    store = SqliteStore(tmp_path / "gateway.db", PHONE_KEY)
    await store.open()
    rule, clock = ScriptedSilence(), Clock()
    monitor = AlertMonitor(limited, store, [rule], region="黔东南", owner="test", clock=clock)
    rule.silent = {"city-12345-rest": 1}
    await monitor.evaluate()
    rule.silent = {"city-12345-rest": 1, "legacy-registration": 2}
    await monitor.evaluate()
    owed = {a.subject: a.owed for a in await store.list_alerts(firing_only=True)}
    assert owed == {"city-12345-rest": (), "legacy-registration": ("ops-webhook",)}  # held back by the limit

    without = AlertMonitor(AlertsConfig(), store, [rule], region="黔东南", owner="test", clock=clock)
    await without.evaluate()
    assert {a.subject: a.owed for a in await store.list_alerts(firing_only=True)} == {
        "city-12345-rest": (), "legacy-registration": ()}
    await store.close()


async def test_a_partner_not_hearing_its_tickets_newest_status_is_told_by_the_senders_echo(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "gateway.db", PHONE_KEY)
    await store.open()
    ticket = make_ticket("GZ-ECHO-ALERT-1")
    await store.intake(ticket, RAW, "application/json", [national()])
    # The status callback of an ACCEPTED event, as a status event makes it.
    await store.save_ticket(ticket, [OutboxEntry(
        destination="callback:city-12345-rest", kind=DeliveryKind.CALLBACK, body=b'{"handleStatus":"1"}',
        idempotency_key="echo-alert:1", reports=ReportedStatus(1, "ACCEPTED"))])
    clock = Clock()
    clock.now = datetime.now(UTC) + timedelta(hours=2)  # the callback has waited two hours, the threshold is one
    rule = SilentPartners(store, lambda: 3600.0, Rules().sender_silent)
    monitor = AlertMonitor(CONFIG, store, [rule], region="黔东南", owner="test", clock=clock)

    await monitor.evaluate()

    [alert] = await store.list_alerts(firing_only=True)
    assert (alert.key, alert.count, alert.details) == ("sender_silent:city-12345-rest", 1, (ticket.ticket_id,))
    assert alert.summary == "接口 city-12345-rest 有 1 件工单的最新状态超过 60 分钟 未送达：来源系统未收到回音"
    assert _changes(await _messages(store)) == [("fired", 1)]

    [callback] = await store.claim("callback:city-12345-rest", "w", 30)  # the partner takes it: it has heard
    await store.settle_delivered(callback, attempt(callback))
    clock.advance(minutes=3)
    await monitor.evaluate()
    assert await store.list_alerts(firing_only=True) == []
    assert _changes(await _messages(store)) == [("resolved", 1)]
    await store.close()
