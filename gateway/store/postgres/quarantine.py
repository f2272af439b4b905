"""The PostgreSQL store's quarantine: payloads that failed mapping, kept with their errors until re-mapped."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import asyncpg

from contracts.errors import FieldError
from gateway.store.base import QuarantinedPayload
from gateway.store.errors import UnknownQuarantine
from gateway.store.postgres.connection import Connections
from gateway.store.records import payload_digest

_COLUMNS = "id, adapter_id, received_at, content_type, body, errors, resolved_ticket_id, times_seen, last_seen_at"


async def insert(db: Connections, quarantine_id: str, adapter_id: str, body: bytes, content_type: str,
                 errors_json: str) -> str:
    """A new record, or one more sighting of the same payload's open record (the unique index decides); its id."""
    now = datetime.now(UTC)
    return str(await db.fetchval(
        "INSERT INTO quarantine (id, adapter_id, received_at, content_type, body, errors, payload_digest, times_seen,"
        " last_seen_at) VALUES ($1, $2, $3, $4, $5, $6::json, $7, 1, $3)"
        " ON CONFLICT (adapter_id, payload_digest) WHERE resolved_ticket_id IS NULL AND payload_digest IS NOT NULL"
        " DO UPDATE SET times_seen = quarantine.times_seen + 1, last_seen_at = excluded.last_seen_at,"
        " errors = excluded.errors RETURNING id",
        quarantine_id, adapter_id, now, content_type, body, errors_json, payload_digest(content_type, body)))


async def resolve(db: Connections, quarantine_id: str, ticket_id: str) -> None:
    status = await db.execute("UPDATE quarantine SET resolved_ticket_id = $2 WHERE id = $1", quarantine_id, ticket_id)
    if status == "UPDATE 0":
        raise UnknownQuarantine(f"no quarantined payload {quarantine_id}")


async def note_returned(db: Connections, quarantine_id: str, errors_json: str) -> None:
    status = await db.execute("UPDATE quarantine SET errors = $2::json WHERE id = $1", quarantine_id, errors_json)
    if status == "UPDATE 0":
        raise UnknownQuarantine(f"no quarantined payload {quarantine_id}")


def _quarantined(r: asyncpg.Record) -> QuarantinedPayload:
    return QuarantinedPayload(
        quarantine_id=r["id"], adapter_id=r["adapter_id"], received_at=r["received_at"],
        content_type=r["content_type"], body=bytes(r["body"]),
        errors=tuple(FieldError.model_validate(e) for e in json.loads(r["errors"])),
        resolved_ticket_id=r["resolved_ticket_id"], times_seen=r["times_seen"],
        last_seen_at=r["last_seen_at"] if r["last_seen_at"] is not None else r["received_at"],
    )


async def get_quarantined(db: Connections, quarantine_id: str) -> QuarantinedPayload | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM quarantine WHERE id = $1", quarantine_id)  # noqa: S608
    return _quarantined(row) if row is not None else None


async def list_quarantined(db: Connections, adapter_id: str | None, limit: int) -> list[QuarantinedPayload]:
    if adapter_id is None:
        rows = await db.fetch(
            f"SELECT {_COLUMNS} FROM quarantine ORDER BY received_at DESC, seq DESC LIMIT $1", limit)  # noqa: S608
    else:
        rows = await db.fetch(
            f"SELECT {_COLUMNS} FROM quarantine WHERE adapter_id = $1"  # noqa: S608
            " ORDER BY received_at DESC, seq DESC LIMIT $2", adapter_id, limit)
    return [_quarantined(r) for r in rows]
