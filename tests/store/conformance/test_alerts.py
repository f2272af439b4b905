"""The alert ledger role (AlertLedger) on every backend: records saved whole, firing ones listed apart."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from gateway.store import AlertRecord, Store
from tests.store.conftest import StoreFactory


def _alert(alert_id: str, *, at: datetime, key: str = "dead_letters:national") -> AlertRecord:
    rule, _, subject = key.partition(":")
    return AlertRecord(alert_id=alert_id, key=key, rule=rule, subject=subject, severity="critical",
                       state="firing", summary="通道 national 有 3 条死信", count=3, peak=3, started_at=at,
                       updated_at=at, last_seen_at=at, details=("GZ-12345-20240611-0001",), owed=("ops-wecom",))


async def test_an_alert_is_kept_whole_and_read_back(store: Store) -> None:
    at = datetime(2026, 12, 6, 10, 30, 15, 123000, tzinfo=UTC)
    alert = replace(_alert("A1", at=at), notified_at=at, notified_count=2, notices=1)

    await store.save_alert(alert)

    assert await store.list_alerts() == [alert]


async def test_saving_again_replaces_the_record(store: Store) -> None:
    at = datetime.now(UTC).replace(microsecond=0)
    await store.save_alert(_alert("A1", at=at))
    resolved = replace(_alert("A1", at=at), state="resolved", count=0, resolved_at=at + timedelta(minutes=5),
                       updated_at=at + timedelta(minutes=5), owed=())

    await store.save_alert(resolved)

    assert await store.list_alerts() == [resolved]
    assert await store.list_alerts(firing_only=True) == []


async def test_firing_alerts_are_listed_apart_most_recently_updated_first(store: Store) -> None:
    at = datetime.now(UTC).replace(microsecond=0)
    await store.save_alert(_alert("A1", at=at, key="dead_letters:national"))
    await store.save_alert(_alert("A2", at=at + timedelta(seconds=1), key="breaker_open:national"))
    await store.save_alert(replace(_alert("A3", at=at + timedelta(seconds=2), key="poller_failing:province"),
                                   state="resolved", resolved_at=at + timedelta(seconds=2)))

    assert [a.alert_id for a in await store.list_alerts(firing_only=True)] == ["A2", "A1"]
    assert [a.alert_id for a in await store.list_alerts()] == ["A3", "A2", "A1"]
    assert [a.alert_id for a in await store.list_alerts(limit=1)] == ["A3"]


async def test_alerts_outlive_the_store_being_closed_and_opened(store: Store, open_store: StoreFactory) -> None:
    at = datetime.now(UTC).replace(microsecond=0)
    await store.save_alert(_alert("A1", at=at))
    await store.close()

    reopened = await open_store()

    assert [a.alert_id for a in await reopened.list_alerts(firing_only=True)] == ["A1"]
