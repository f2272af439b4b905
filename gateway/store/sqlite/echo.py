"""The SQLite store's sender's echo: per ticket, the newest status its partner's callbacks carry and the newest it
heard, kept in the transactions that enqueue and settle those callbacks; the tickets behind indexed by since when."""

from __future__ import annotations

import sqlite3
from datetime import datetime

from contracts.delivery import ReportedStatus
from gateway.store.base import PartnerEcho
from gateway.store.records import from_ms, to_ms
from gateway.store.sqlite.executor import Executor, Row

# The oldest callback of the ticket's lane that reports a status newer than the partner heard: the one it waits for.
# (Nothing heard is NULL, never a number: a ticket's sequences start at -1, the status before any event.)
_WAITING = (
    "(SELECT d.id FROM deliveries AS d WHERE d.ticket_id = e.ticket_id AND d.destination = e.destination"
    " AND (e.heard_sequence IS NULL OR d.reports_sequence > e.heard_sequence)"
    " ORDER BY d.reports_sequence, d.rowid LIMIT 1)"
)
_COLUMNS = ("e.ticket_id, e.destination, e.latest_sequence, e.latest_status, e.latest_at, e.heard_sequence,"
            f" e.heard_status, e.heard_at, e.behind_since, {_WAITING}")


# -- writes (inside the transaction of the delivery write) -------------------------------------------------
def status_enqueued(db: sqlite3.Connection, ticket_id: str, destination: str, reports: ReportedStatus,
                    now: int) -> None:
    """A callback reporting `reports` was enqueued: it is the newest status unless a newer one was; the partner is
    behind from now on unless it was already (since earlier) or has heard this status or a newer one."""
    db.execute(
        "INSERT INTO partner_echo (ticket_id, destination, latest_sequence, latest_status, latest_at, behind_since)"
        " VALUES (?1, ?2, ?3, ?4, ?5, ?5) ON CONFLICT (ticket_id) DO UPDATE SET"
        "  latest_status = CASE WHEN ?3 >= latest_sequence THEN ?4 ELSE latest_status END,"
        "  latest_at = CASE WHEN ?3 >= latest_sequence THEN ?5 ELSE latest_at END,"
        "  latest_sequence = MAX(latest_sequence, ?3),"
        "  destination = ?2,"
        "  behind_since = CASE WHEN heard_sequence IS NULL OR ?3 > heard_sequence THEN COALESCE(behind_since, ?5)"
        "                 ELSE behind_since END",
        (ticket_id, destination, reports.sequence, reports.status, now),
    )


def status_heard(db: sqlite3.Connection, ticket_id: str, destination: str, sequence: int, status: str,
                 now: int) -> None:
    """A callback reporting status `sequence` was delivered: the partner heard it (unless it heard a newer one
    already); it is behind since the oldest callback still reporting something newer, or not at all. One
    statement: every right-hand side reads the row as it was."""
    db.execute(
        "UPDATE partner_echo SET"
        "  heard_status = CASE WHEN heard_sequence IS NULL OR ?2 > heard_sequence THEN ?3 ELSE heard_status END,"
        "  heard_at = CASE WHEN heard_sequence IS NULL OR ?2 > heard_sequence THEN ?4 ELSE heard_at END,"
        "  heard_sequence = CASE WHEN heard_sequence IS NULL OR ?2 > heard_sequence THEN ?2 ELSE heard_sequence END,"
        "  behind_since = (SELECT MIN(d.created_at) FROM deliveries AS d WHERE d.ticket_id = ?1"
        "    AND d.destination = ?5 AND d.reports_sequence > MAX(COALESCE(partner_echo.heard_sequence, ?2), ?2))"
        " WHERE ticket_id = ?1",
        (ticket_id, sequence, status, now, destination),
    )


# -- reads --------------------------------------------------------------------------------------------------
def _echo(row: Row) -> PartnerEcho:
    (ticket_id, destination, latest_sequence, latest_status, latest_at, heard_sequence, heard_status, heard_at,
     behind_since, waiting) = row
    return PartnerEcho(
        ticket_id=str(ticket_id), destination=str(destination), latest_sequence=int(latest_sequence),
        latest_status=str(latest_status), latest_at=from_ms(int(latest_at)),
        heard_sequence=int(heard_sequence) if heard_sequence is not None else None,
        heard_status=str(heard_status) if heard_status is not None else None,
        heard_at=from_ms(int(heard_at)) if heard_at is not None else None,
        behind_since=from_ms(int(behind_since)) if behind_since is not None else None,
        waiting_delivery_id=str(waiting) if waiting is not None and behind_since is not None else None,
    )


async def get_echo(x: Executor, ticket_id: str) -> PartnerEcho | None:
    row = await x.run(x.fetchone, f"SELECT {_COLUMNS} FROM partner_echo AS e WHERE e.ticket_id = ?",  # noqa: S608
                      (ticket_id,))
    return _echo(row) if row else None


async def list_behind(x: Executor, behind_before: datetime, limit: int) -> list[PartnerEcho]:
    rows = await x.run(
        x.fetchall,
        f"SELECT {_COLUMNS} FROM partner_echo AS e WHERE e.behind_since IS NOT NULL"  # noqa: S608
        " AND e.behind_since <= ? ORDER BY e.behind_since, e.ticket_id LIMIT ?",
        (to_ms(behind_before), limit),
    )
    return [_echo(row) for row in rows]


async def count_behind(x: Executor, behind_before: datetime) -> int:
    row = await x.run(x.fetchone, "SELECT COUNT(*) FROM partner_echo WHERE behind_since IS NOT NULL"
                      " AND behind_since <= ?", (to_ms(behind_before),))
    return int(row[0]) if row else 0
