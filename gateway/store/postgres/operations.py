"""The PostgreSQL store's operations records: the audit log, per-minute counts and intake totals per adapter."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from gateway.store.base import COUNTS_RETENTION_S, RETURNED_NOTE, AuditEntry, AuditQuery
from gateway.store.postgres.connection import Connections
from gateway.store.postgres.where import where


async def append_audit(db: Connections, entry_id: str, entry: AuditEntry, detail: str) -> None:
    await db.execute(
        "INSERT INTO audit_log (id, at, actor, role, action, outcome, ticket_ids, detail)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8::json)",
        entry_id, entry.at, entry.actor, entry.role, entry.action, entry.outcome, list(entry.ticket_ids), detail)


async def list_audit(db: Connections, query: AuditQuery) -> list[AuditEntry]:
    condition, params = where([
        ("actor = {}", query.actor),
        ("action = {}", query.action),
        ("ticket_ids @> ARRAY[{}::text]", query.ticket_id),
        ("at >= {}", query.since),
        ("at < {}", query.until),
    ])
    rows = await db.fetch(
        "SELECT id, at, actor, role, action, outcome, ticket_ids, detail FROM audit_log"  # noqa: S608
        f" {condition} ORDER BY at DESC, seq DESC LIMIT ${len(params) + 1}", *params, query.limit)
    return [AuditEntry(entry_id=r["id"], at=r["at"], actor=r["actor"], role=r["role"], action=r["action"],
                       outcome=r["outcome"], ticket_ids=tuple(r["ticket_ids"]), detail=json.loads(r["detail"]))
            for r in rows]


async def add_counts(db: Connections, counts: Mapping[datetime, Mapping[str, int]]) -> None:
    """Add to the per-minute counters, and drop those older than their retention, in one transaction."""
    summed: dict[tuple[datetime, str], int] = {}
    for at, by_name in counts.items():
        minute = at.astimezone(UTC).replace(second=0, microsecond=0)
        for name, n in by_name.items():
            if n:
                summed[minute, name] = summed.get((minute, name), 0) + int(n)
    if not summed:
        return
    async with db.transaction() as conn:
        await conn.execute(
            "INSERT INTO minute_counts (minute, name, count)"
            " SELECT * FROM unnest($1::timestamptz[], $2::text[], $3::bigint[])"
            " ON CONFLICT (minute, name) DO UPDATE SET count = minute_counts.count + excluded.count",
            [k[0] for k in summed], [k[1] for k in summed], list(summed.values()))
        await conn.execute("DELETE FROM minute_counts WHERE minute < $1",
                           datetime.now(UTC) - timedelta(seconds=COUNTS_RETENTION_S))


async def read_counts(db: Connections, since: datetime, until: datetime | None) -> dict[datetime, dict[str, int]]:
    low = since.astimezone(UTC).replace(second=0, microsecond=0)
    high = until if until is not None else datetime.now(UTC) + timedelta(minutes=1)
    rows = await db.fetch("SELECT minute, name, count FROM minute_counts WHERE minute >= $1 AND minute < $2"
                          " ORDER BY minute", low, high)
    found: dict[datetime, dict[str, int]] = {}
    for r in rows:
        found.setdefault(r["minute"], {})[r["name"]] = int(r["count"])
    return found


async def intake_stats(db: Connections, adapter_ids: Sequence[str]) -> dict[str, dict[str, int]]:
    """Tickets and quarantined payloads (all, still open, sent back as 退单) per adapter: counts over the adapter
    indexes."""
    stats = {a: {"tickets": 0, "quarantined": 0, "quarantine_open": 0, "returned": 0} for a in adapter_ids}
    async with db.connection() as conn:
        for r in await conn.fetch("SELECT adapter_id, count(*) AS n FROM tickets WHERE adapter_id = ANY($1::text[])"
                                  " GROUP BY adapter_id", list(adapter_ids)):
            stats[r["adapter_id"]]["tickets"] = int(r["n"])
        for r in await conn.fetch(
                "SELECT adapter_id, count(*) AS n,"
                " count(*) FILTER (WHERE resolved_ticket_id IS NULL AND NOT returned) AS still_open,"
                " count(*) FILTER (WHERE returned) AS returned"
                " FROM (SELECT adapter_id, resolved_ticket_id, coalesce(errors->0->>'rule' LIKE $2, false) AS returned"
                " FROM quarantine WHERE adapter_id = ANY($1::text[])) q GROUP BY adapter_id",
                list(adapter_ids), f"{RETURNED_NOTE}%"):
            stats[r["adapter_id"]]["quarantined"] = int(r["n"])
            stats[r["adapter_id"]]["quarantine_open"] = int(r["still_open"])
            stats[r["adapter_id"]]["returned"] = int(r["returned"])
    return stats
