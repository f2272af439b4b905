"""The PostgreSQL store's sender's echo: per ticket, the newest status its partner's callbacks carry and the newest it
heard, kept in the transactions that enqueue and settle those callbacks; the tickets behind indexed by since when."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from contracts.delivery import OutboxEntry
from gateway.store.base import PartnerEcho
from gateway.store.postgres.connection import Conn, Connections

# The oldest callback of the ticket's lane that reports a status newer than the partner heard: the one it waits for.
_WAITING = (
    "(SELECT d.id FROM deliveries AS d WHERE d.ticket_id = e.ticket_id AND d.destination = e.destination"
    " AND d.reports_sequence IS NOT NULL AND (e.heard_sequence IS NULL OR d.reports_sequence > e.heard_sequence)"
    " ORDER BY d.reports_sequence, d.seq LIMIT 1) AS waiting"
)
_COLUMNS = ("e.ticket_id, e.destination, e.latest_sequence, e.latest_status, e.latest_at, e.heard_sequence,"
            f" e.heard_status, e.heard_at, e.behind_since, {_WAITING}")

# A callback reporting a status was enqueued: it is the newest status unless a newer one was; the partner is behind
# from now on unless it was already (since earlier) or has heard this status or a newer one.
_ENQUEUED = """
INSERT INTO partner_echo (ticket_id, destination, latest_sequence, latest_status, latest_at, behind_since)
VALUES ($1, $2, $3, $4, $5, $5)
ON CONFLICT (ticket_id) DO UPDATE SET
    latest_status = CASE WHEN $3 >= partner_echo.latest_sequence THEN $4 ELSE partner_echo.latest_status END,
    latest_at = CASE WHEN $3 >= partner_echo.latest_sequence THEN $5 ELSE partner_echo.latest_at END,
    latest_sequence = GREATEST(partner_echo.latest_sequence, $3),
    destination = $2,
    behind_since = CASE WHEN partner_echo.heard_sequence IS NULL OR $3 > partner_echo.heard_sequence
                        THEN COALESCE(partner_echo.behind_since, $5) ELSE partner_echo.behind_since END
"""

# A callback reporting status `sequence` was delivered (a CTE of the settle, `settled` its row): the partner heard it
# unless it heard a newer one already; it is behind since the oldest callback still reporting something newer.
HEARD_CTE = """
heard AS (
    UPDATE partner_echo AS e SET
        heard_status = CASE WHEN e.heard_sequence IS NULL OR s.reports_sequence > e.heard_sequence
                            THEN s.reports_status ELSE e.heard_status END,
        heard_at = CASE WHEN e.heard_sequence IS NULL OR s.reports_sequence > e.heard_sequence
                        THEN $7 ELSE e.heard_at END,
        heard_sequence = CASE WHEN e.heard_sequence IS NULL OR s.reports_sequence > e.heard_sequence
                              THEN s.reports_sequence ELSE e.heard_sequence END,
        behind_since = (SELECT min(d.created_at) FROM deliveries AS d
                         WHERE d.ticket_id = s.ticket_id AND d.destination = s.destination
                           AND d.reports_sequence > GREATEST(COALESCE(e.heard_sequence, s.reports_sequence),
                                                             s.reports_sequence))
      FROM settled AS s
     WHERE $3 = 'delivered' AND s.reports_sequence IS NOT NULL AND e.ticket_id = s.ticket_id)"""


async def statuses_enqueued(conn: Conn, ticket_id: str, outbox: Sequence[OutboxEntry], now: datetime) -> None:
    """The echo moved by each status callback of an outbox, in its order (inside the enqueuing transaction)."""
    for entry in outbox:
        if entry.reports is not None:
            await conn.execute(_ENQUEUED, ticket_id, entry.destination, entry.reports.sequence, entry.reports.status,
                               now)


def reports_any(outbox: Sequence[OutboxEntry]) -> bool:
    return any(entry.reports is not None for entry in outbox)


def _echo(r: asyncpg.Record) -> PartnerEcho:
    behind = r["behind_since"]
    return PartnerEcho(
        ticket_id=r["ticket_id"], destination=r["destination"], latest_sequence=r["latest_sequence"],
        latest_status=r["latest_status"], latest_at=r["latest_at"], heard_sequence=r["heard_sequence"],
        heard_status=r["heard_status"], heard_at=r["heard_at"], behind_since=behind,
        waiting_delivery_id=r["waiting"] if behind is not None else None)


async def get_echo(db: Connections, ticket_id: str) -> PartnerEcho | None:
    row = await db.fetchrow(f"SELECT {_COLUMNS} FROM partner_echo AS e WHERE e.ticket_id = $1", ticket_id)  # noqa: S608
    return _echo(row) if row is not None else None


async def list_behind(db: Connections, behind_before: datetime, limit: int) -> list[PartnerEcho]:
    rows = await db.fetch(
        f"SELECT {_COLUMNS} FROM partner_echo AS e WHERE e.behind_since IS NOT NULL"  # noqa: S608
        " AND e.behind_since <= $1 ORDER BY e.behind_since, e.ticket_id LIMIT $2", behind_before, limit)
    return [_echo(r) for r in rows]


async def count_behind(db: Connections, behind_before: datetime) -> int:
    return int(await db.fetchval("SELECT count(*) FROM partner_echo WHERE behind_since IS NOT NULL"
                                 " AND behind_since <= $1", behind_before))
