"""The SQLite store's alerts: one row per alert, its record as JSON."""

from __future__ import annotations

import sqlite3

from gateway.store.base import AlertRecord
from gateway.store.records import alert_from_json, alert_to_json, to_ms
from gateway.store.sqlite.executor import Executor


def save_alert(alert: AlertRecord, db: sqlite3.Connection) -> None:
    db.execute(
        "INSERT INTO alerts (id, firing, updated_at, body) VALUES (?,?,?,?)"
        " ON CONFLICT(id) DO UPDATE SET firing = excluded.firing, updated_at = excluded.updated_at,"
        " body = excluded.body",
        (alert.alert_id, int(alert.state == "firing"), to_ms(alert.updated_at), alert_to_json(alert)),
    )


async def list_alerts(x: Executor, firing_only: bool, limit: int) -> list[AlertRecord]:
    condition = "WHERE firing = 1" if firing_only else ""
    rows = await x.run(x.fetchall, f"SELECT body FROM alerts {condition}"  # noqa: S608 - a fixed condition
                       " ORDER BY updated_at DESC, rowid DESC LIMIT ?", (limit,))
    return [alert_from_json(str(r[0])) for r in rows]
