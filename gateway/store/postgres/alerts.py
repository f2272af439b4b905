"""The PostgreSQL store's alerts: one row per alert, its record as JSON."""

from __future__ import annotations

from gateway.store.base import AlertRecord
from gateway.store.postgres.connection import Connections
from gateway.store.records import alert_from_json, alert_to_json


async def save_alert(db: Connections, alert: AlertRecord) -> None:
    await db.execute(
        "INSERT INTO alerts (id, firing, updated_at, body) VALUES ($1, $2, $3, $4::json)"
        " ON CONFLICT (id) DO UPDATE SET firing = excluded.firing, updated_at = excluded.updated_at,"
        " body = excluded.body",
        alert.alert_id, alert.state == "firing", alert.updated_at, alert_to_json(alert))


async def list_alerts(db: Connections, firing_only: bool, limit: int) -> list[AlertRecord]:
    condition = "WHERE firing" if firing_only else ""
    rows = await db.fetch(f"SELECT body FROM alerts {condition} ORDER BY updated_at DESC, seq DESC LIMIT $1",  # noqa: S608
                          limit)
    return [alert_from_json(r["body"]) for r in rows]
