"""The ops ledger role (OpsLedger) on every backend: audit log, per-minute counts, intake totals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from contracts.errors import FieldError
from gateway.store import AuditEntry, AuditQuery, Store
from tests.store.conformance.conformance_support import RAW
from tests.store.store_support import make_ticket


def _audit(action: str, *tickets: str, actor: str = "ops-zhang", at: datetime | None = None,
           **detail: object) -> AuditEntry:
    return AuditEntry(actor=actor, role="operator", action=action, at=at or datetime.now(UTC),
                      ticket_ids=tuple(tickets), detail=detail)


async def test_audit_entries_are_kept_and_listed_newest_first(store: Store) -> None:
    first = await store.append_audit(_audit("replay", "T1", delivery_ids=["D1"], destination="national"))
    second = await store.append_audit(_audit("quarantine.remap", "T2", quarantine_id="Q1"))

    listed = await store.list_audit(AuditQuery())
    assert [e.entry_id for e in listed] == [second, first]
    newest = listed[0]
    assert (newest.actor, newest.role, newest.action, newest.outcome) == ("ops-zhang", "operator",
                                                                          "quarantine.remap", "ok")
    assert newest.ticket_ids == ("T2",)
    assert newest.detail == {"quarantine_id": "Q1"}
    assert listed[1].detail == {"delivery_ids": ["D1"], "destination": "national"}


async def test_audit_entries_are_found_by_ticket_actor_action_and_time(store: Store) -> None:
    early = datetime.now(UTC) - timedelta(minutes=1)
    await store.append_audit(_audit("replay", "T1", "T2", at=early))
    await store.append_audit(_audit("replay.dry_run", "T2", actor="ops-li"))
    await store.append_audit(_audit("config.reload", actor="ops-admin"))

    assert [e.action for e in await store.list_audit(AuditQuery(ticket_id="T2"))] == ["replay.dry_run", "replay"]
    assert [e.action for e in await store.list_audit(AuditQuery(ticket_id="T1"))] == ["replay"]
    assert await store.list_audit(AuditQuery(ticket_id="T9")) == []
    assert [e.actor for e in await store.list_audit(AuditQuery(actor="ops-li"))] == ["ops-li"]
    assert [e.action for e in await store.list_audit(AuditQuery(action="config.reload"))] == ["config.reload"]
    recent = await store.list_audit(AuditQuery(since=early + timedelta(seconds=1)))
    assert {e.action for e in recent} == {"replay.dry_run", "config.reload"}
    assert [e.action for e in await store.list_audit(AuditQuery(until=early + timedelta(seconds=1)))] == ["replay"]
    assert len(await store.list_audit(AuditQuery(limit=2))) == 2


async def test_minute_counts_add_up_per_minute_and_series(store: Store) -> None:
    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    before = minute - timedelta(minutes=3)
    await store.add_counts({minute + timedelta(seconds=10): {"intake": 2, "delivered": 1}, before: {"intake": 1}})
    await store.add_counts({minute + timedelta(seconds=50): {"intake": 3, "failed": 0}})

    counts = await store.read_counts(minute - timedelta(minutes=10))
    assert counts == {before: {"intake": 1}, minute: {"intake": 5, "delivered": 1}}
    assert await store.read_counts(minute) == {minute: {"intake": 5, "delivered": 1}}
    assert await store.read_counts(before, until=minute) == {before: {"intake": 1}}


async def test_intake_stats_count_tickets_and_open_quarantine_per_adapter(store: Store) -> None:
    await store.intake(make_ticket("A-1"), RAW, "application/json", [])
    await store.intake(make_ticket("A-2"), RAW, "application/json", [])
    await store.intake(make_ticket("B-1", adapter_id="legacy-registration"), RAW, "application/json", [])
    error = FieldError(field="complainant.phone", rule="phone", message="not a phone number")
    q1 = await store.quarantine("city-12345-rest", RAW, "application/json", [error])
    await store.quarantine("city-12345-rest", RAW + b" ", "application/json", [error])  # another payload
    await store.resolve_quarantined(q1, "01J0000000000000000000000A")
    # 退单: one kept when it was pushed, one an open record an operator's re-map sent back; both are closed.
    returned = FieldError(field="(ticket)", rule="returned:04", message="求助类诉求，不属于市场监管职责")
    await store.quarantine("city-12345-rest", RAW + b"  ", "application/json", [returned])
    q4 = await store.quarantine("city-12345-rest", RAW + b"   ", "application/json", [error])
    await store.return_quarantined(q4, [returned])

    stats = await store.intake_stats(["city-12345-rest", "legacy-registration", "emergency-command"])
    assert stats == {
        "city-12345-rest": {"tickets": 2, "quarantined": 4, "quarantine_open": 1, "returned": 2},
        "legacy-registration": {"tickets": 1, "quarantined": 0, "quarantine_open": 0, "returned": 0},
        "emergency-command": {"tickets": 0, "quarantined": 0, "quarantine_open": 0, "returned": 0},
    }
