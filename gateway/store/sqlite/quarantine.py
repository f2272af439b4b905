"""The SQLite store's quarantine: payloads that failed mapping, kept with their errors until re-mapped."""

from __future__ import annotations

import json
import sqlite3

from contracts.errors import FieldError
from gateway.store.base import QuarantinedPayload
from gateway.store.errors import UnknownQuarantine
from gateway.store.records import from_ms, now_ms, payload_digest
from gateway.store.sqlite.executor import Executor, Row

_COLUMNS = ("id, adapter_id, received_at, content_type, body, errors, resolved_ticket_id, times_seen,"
            " last_seen_at")


def insert(quarantine_id: str, adapter_id: str, body: bytes, content_type: str, errors_json: str,
           db: sqlite3.Connection) -> str:
    """A new record, or one more sighting of the same payload's open record (the unique index decides); its id."""
    now = now_ms()
    row = db.execute(
        "INSERT INTO quarantine (id, adapter_id, received_at, content_type, body, errors, payload_digest,"
        " times_seen, last_seen_at) VALUES (?,?,?,?,?,?,?,1,?)"
        " ON CONFLICT (adapter_id, payload_digest) WHERE resolved_ticket_id IS NULL AND payload_digest IS NOT NULL"
        " DO UPDATE SET times_seen = times_seen + 1, last_seen_at = excluded.last_seen_at, errors = excluded.errors"
        " RETURNING id",
        (quarantine_id, adapter_id, now, content_type, body, errors_json, payload_digest(content_type, body), now),
    ).fetchone()
    return str(row[0])


def resolve(quarantine_id: str, ticket_id: str, db: sqlite3.Connection) -> None:
    changed = db.execute("UPDATE quarantine SET resolved_ticket_id = ? WHERE id = ?",
                         (ticket_id, quarantine_id)).rowcount
    if changed == 0:
        raise UnknownQuarantine(f"no quarantined payload {quarantine_id}")


def note_returned(quarantine_id: str, errors_json: str, db: sqlite3.Connection) -> None:
    changed = db.execute("UPDATE quarantine SET errors = ? WHERE id = ?", (errors_json, quarantine_id)).rowcount
    if changed == 0:
        raise UnknownQuarantine(f"no quarantined payload {quarantine_id}")


def _quarantined(row: Row) -> QuarantinedPayload:
    qid, adapter_id, received_at, content_type, body, errors, resolved, times_seen, last_seen = row
    return QuarantinedPayload(
        quarantine_id=str(qid),
        adapter_id=str(adapter_id),
        received_at=from_ms(int(received_at)),
        content_type=str(content_type),
        body=bytes(body),
        errors=tuple(FieldError.model_validate(e) for e in json.loads(str(errors))),
        resolved_ticket_id=str(resolved) if resolved is not None else None,
        times_seen=int(times_seen),
        last_seen_at=from_ms(int(last_seen if last_seen is not None else received_at)),
    )


async def get_quarantined(x: Executor, quarantine_id: str) -> QuarantinedPayload | None:
    row = await x.run(x.fetchone, f"SELECT {_COLUMNS} FROM quarantine WHERE id = ?",  # noqa: S608
                      (quarantine_id,))
    return _quarantined(row) if row else None


async def list_quarantined(x: Executor, adapter_id: str | None, limit: int) -> list[QuarantinedPayload]:
    if adapter_id is None:
        rows = await x.run(
            x.fetchall,
            f"SELECT {_COLUMNS} FROM quarantine ORDER BY received_at DESC, rowid DESC LIMIT ?",  # noqa: S608
            (limit,),
        )
    else:
        rows = await x.run(
            x.fetchall,
            f"SELECT {_COLUMNS} FROM quarantine WHERE adapter_id = ?"  # noqa: S608
            " ORDER BY received_at DESC, rowid DESC LIMIT ?",
            (adapter_id, limit),
        )
    return [_quarantined(row) for row in rows]
