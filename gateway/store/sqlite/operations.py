"""The SQLite store's operations records: the audit log, per-minute counts and intake totals per adapter."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime

from gateway.store.base import COUNTS_RETENTION_S, RETURNED_NOTE, AuditEntry, AuditQuery
from gateway.store.records import from_ms, minute_start_ms, now_ms, to_ms
from gateway.store.sqlite.executor import Executor
from gateway.store.sqlite.where import ms, where


def append_audit(entry_id: str, entry: AuditEntry, detail: str, db: sqlite3.Connection) -> None:
    db.execute(
        "INSERT INTO audit_log (id, at, actor, role, action, outcome, ticket_ids, detail)"
        " VALUES (?,?,?,?,?,?,?,?)",
        (entry_id, to_ms(entry.at), entry.actor, entry.role, entry.action, entry.outcome,
         json.dumps(list(entry.ticket_ids)), detail),
    )
    db.executemany("INSERT OR IGNORE INTO audit_tickets (ticket_id, audit_id) VALUES (?,?)",
                   [(tid, entry_id) for tid in entry.ticket_ids])


async def list_audit(x: Executor, query: AuditQuery) -> list[AuditEntry]:
    condition, params = where([
        ("actor = ?", query.actor),
        ("action = ?", query.action),
        ("id IN (SELECT audit_id FROM audit_tickets WHERE ticket_id = ?)", query.ticket_id),
        ("at >= ?", ms(query.since)),
        ("at < ?", ms(query.until)),
    ])
    rows = await x.run(
        x.fetchall,
        "SELECT id, at, actor, role, action, outcome, ticket_ids, detail FROM audit_log"  # noqa: S608
        f" {condition} ORDER BY at DESC, rowid DESC LIMIT ?",
        (*params, query.limit),
    )
    return [
        AuditEntry(entry_id=str(r[0]), at=from_ms(int(r[1])), actor=str(r[2]), role=str(r[3]),
                   action=str(r[4]), outcome=str(r[5]), ticket_ids=tuple(json.loads(str(r[6]))),
                   detail=json.loads(str(r[7])))
        for r in rows
    ]


def add_counts(rows: list[tuple[int, str, int]], db: sqlite3.Connection) -> None:
    """Add to the per-minute counters, and drop those older than their retention."""
    db.executemany(
        "INSERT INTO minute_counts (minute, name, count) VALUES (?,?,?)"
        " ON CONFLICT(minute, name) DO UPDATE SET count = count + excluded.count",
        rows,
    )
    db.execute("DELETE FROM minute_counts WHERE minute < ?", (now_ms() - COUNTS_RETENTION_S * 1000,))


async def read_counts(x: Executor, since: datetime, until: datetime | None) -> dict[datetime, dict[str, int]]:
    high = to_ms(until) if until is not None else now_ms() + 60_000
    rows = await x.run(
        x.fetchall,
        "SELECT minute, name, count FROM minute_counts WHERE minute >= ? AND minute < ? ORDER BY minute",
        (minute_start_ms(since), high),
    )
    found: dict[datetime, dict[str, int]] = {}
    for minute, name, count in rows:
        found.setdefault(from_ms(int(minute)), {})[str(name)] = int(count)
    return found


def intake_stats(x: Executor, adapter_ids: list[str]) -> dict[str, dict[str, int]]:
    """Tickets and quarantined payloads (all, still open, sent back as 退单) per adapter; on the store's thread."""
    stats = {a: {"tickets": 0, "quarantined": 0, "quarantine_open": 0, "returned": 0} for a in adapter_ids}
    db = x.db
    for adapter_id, count in db.execute("SELECT adapter_id, n FROM ticket_counts"):
        if adapter_id in stats:
            stats[adapter_id]["tickets"] = int(count)
    for adapter_id, total, still_open, returned in db.execute(
        "SELECT adapter_id, COUNT(*), SUM(resolved_ticket_id IS NULL AND NOT returned), SUM(returned)"
        " FROM (SELECT adapter_id, resolved_ticket_id,"
        " coalesce(json_extract(errors, '$[0].rule') LIKE ?, 0) AS returned"
        " FROM quarantine) GROUP BY adapter_id", (f"{RETURNED_NOTE}%",)
    ):
        if adapter_id in stats:
            stats[adapter_id]["quarantined"] = int(total)
            stats[adapter_id]["quarantine_open"] = int(still_open or 0)
            stats[adapter_id]["returned"] = int(returned or 0)
    return stats
