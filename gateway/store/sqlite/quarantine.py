"""The SQLite store's quarantine: payloads that failed mapping, kept with their errors until re-mapped."""

from __future__ import annotations

import json
import sqlite3

from contracts.errors import FieldError
from gateway.store.base import QuarantinedPayload
from gateway.store.errors import UnknownQuarantine
from gateway.store.records import from_ms, now_ms
from gateway.store.sqlite.executor import Executor, Row

_COLUMNS = "id, adapter_id, received_at, content_type, body, errors, resolved_ticket_id"


def insert(quarantine_id: str, adapter_id: str, body: bytes, content_type: str, errors_json: str,
           db: sqlite3.Connection) -> None:
    db.execute(
        "INSERT INTO quarantine (id, adapter_id, received_at, content_type, body, errors)"
        " VALUES (?,?,?,?,?,?)",
        (quarantine_id, adapter_id, now_ms(), content_type, body, errors_json),
    )


def resolve(quarantine_id: str, ticket_id: str, db: sqlite3.Connection) -> None:
    changed = db.execute("UPDATE quarantine SET resolved_ticket_id = ? WHERE id = ?",
                         (ticket_id, quarantine_id)).rowcount
    if changed == 0:
        raise UnknownQuarantine(f"no quarantined payload {quarantine_id}")


def _quarantined(row: Row) -> QuarantinedPayload:
    qid, adapter_id, received_at, content_type, body, errors, resolved = row
    return QuarantinedPayload(
        quarantine_id=str(qid),
        adapter_id=str(adapter_id),
        received_at=from_ms(int(received_at)),
        content_type=str(content_type),
        body=bytes(body),
        errors=tuple(FieldError.model_validate(e) for e in json.loads(str(errors))),
        resolved_ticket_id=str(resolved) if resolved is not None else None,
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
