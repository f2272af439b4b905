"""The SQLite store's delivery lanes: enqueue, claims and settles, receipts, replay, compaction, lane counts."""

from __future__ import annotations

import json
import secrets
import sqlite3

from contracts.delivery import (
    AttemptOutcome,
    AttemptReceipt,
    ClaimedDelivery,
    DeliveryKind,
    DeliveryReceipt,
    DeliveryState,
    OutboxEntry,
    ReportedStatus,
)
from contracts.ulids import new_ulid
from gateway.store.base import DeliveryFilter, LeaseLost, replayable
from gateway.store.records import from_ms, now_ms, to_ms
from gateway.store.sqlite import echo
from gateway.store.sqlite.executor import Executor, Row
from gateway.store.sqlite.where import ms, where

# The claim order of a lane: priority first, then fresh before retries (rank = 2*priority + retry). A delivery
# waiting behind an earlier one of its ticket on its lane is parked: its rank is raised by PARKED.
PARKED = 100
PENDING = DeliveryState.PENDING.value
RETRYING = DeliveryState.RETRYING.value
IN_FLIGHT = DeliveryState.IN_FLIGHT.value
DELIVERED = DeliveryState.DELIVERED.value
DEAD = DeliveryState.DEAD.value

_DELIVERY_COLUMNS = (
    "id, ticket_id, destination, kind, idempotency_key, state, attempts, created_at, due_at, delivered_at, "
    "last_error_class, last_status_code"
)

# A leased delivery back to the state it was claimed from (a fresh delivery stays ahead of retries), with no
# attempt counted: the reaper's and a release's.
_PUT_BACK = ("state = COALESCE(return_state, 'pending'), lease_token = NULL, lease_until = NULL, worker_id = NULL,"
             " return_state = NULL")


# -- writes (inside a transaction the caller opened) ---------------------------------------------------
def insert_deliveries(db: sqlite3.Connection, ticket_id: str, idempotency_key: str,
                      outbox: list[OutboxEntry], now: int) -> tuple[str, ...]:
    ids: list[str] = []
    for entry in outbox:
        delivery_id = new_ulid()
        reports = entry.reports
        db.execute(
            "INSERT INTO deliveries (id, ticket_id, destination, kind, idempotency_key, body, content_type,"
            " headers, priority, state, claim_rank, due_at, created_at, reports_sequence, reports_status)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (delivery_id, ticket_id, entry.destination, entry.kind.value,
             entry.idempotency_key or idempotency_key, entry.body, entry.content_type,
             json.dumps(entry.headers, ensure_ascii=False), entry.priority, PENDING,
             2 * entry.priority, now, now, reports.sequence if reports else None, reports.status if reports else None),
        )
        if reports is not None:
            echo.status_enqueued(db, ticket_id, entry.destination, reports, now)
        ids.append(delivery_id)
    return tuple(ids)


def enqueue(ticket_id: str, idempotency_key: str, entries: list[OutboxEntry],
            db: sqlite3.Connection) -> tuple[str, ...]:
    return insert_deliveries(db, ticket_id, idempotency_key, entries, now_ms())


def claim(destination: str, worker_id: str, lease_seconds: float, limit: int,
          db: sqlite3.Connection) -> list[ClaimedDelivery]:
    now = now_ms()
    lease_until = now + int(lease_seconds * 1000)
    claimed: list[ClaimedDelivery] = []
    # One row per statement: the `id = (SELECT … LIMIT 1)` form is the fast one (tech notes).
    for _ in range(limit):
        token = secrets.token_hex(12)
        row = db.execute(
            "UPDATE deliveries SET return_state = state, state = 'in_flight', lease_token = ?,"
            " lease_until = ?, worker_id = ?"
            " WHERE id = (SELECT id FROM deliveries AS d WHERE destination = ?"
            "   AND state IN ('pending', 'retrying') AND due_at <= ? AND claim_rank < ?"
            # One ticket's deliveries to one destination go in the order they were enqueued: a delivery
            # waits while an earlier one of its ticket on its lane is still pending, retrying or in flight.
            # Those waiting are parked outside the rank range (migration 6's triggers); the check here
            # covers any the triggers did not park.
            "   AND NOT EXISTS (SELECT 1 FROM deliveries AS e WHERE e.ticket_id = d.ticket_id"
            "     AND e.destination = d.destination AND e.rowid < d.rowid"
            "     AND e.state IN ('pending', 'retrying', 'in_flight'))"
            "   ORDER BY claim_rank, due_at, rowid LIMIT 1)"
            " RETURNING id, ticket_id, destination, kind, idempotency_key, body, content_type, headers,"
            " attempts, created_at, lease_token, lease_until, budget_attempts, budget_since, reports_sequence,"
            " reports_status",
            (token, lease_until, worker_id, destination, now, PARKED),
        ).fetchone()
        if row is None:
            break
        claimed.append(ClaimedDelivery(
            delivery_id=row[0], ticket_id=row[1], destination=row[2], kind=DeliveryKind(row[3]),
            idempotency_key=row[4], body=bytes(row[5]), content_type=row[6],
            headers=json.loads(row[7]), attempts=row[8], created_at=from_ms(row[9]),
            lease_token=row[10], lease_until=from_ms(row[11]), budget_attempts=row[12],
            budget_since=None if row[13] is None else from_ms(row[13]),
            reports=None if row[14] is None else ReportedStatus(int(row[14]), str(row[15])),
        ))
    return claimed


def settle(claim: ClaimedDelivery, attempt: AttemptReceipt, state: str, due_at: int | None,
           db: sqlite3.Connection) -> None:
    """Record an attempt and move its delivery to `state`; LeaseLost if the claim's lease is no longer held."""
    now = now_ms()
    row = db.execute(
        "UPDATE deliveries SET state = ?, attempts = attempts + 1, lease_token = NULL,"
        " lease_until = NULL, worker_id = NULL, return_state = NULL,"
        " last_error_class = ?, last_status_code = ?,"
        " due_at = COALESCE(?, due_at), claim_rank = 2 * priority + 1,"
        " delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END,"
        " dead_at = CASE WHEN ? = 'dead' THEN ? ELSE dead_at END"
        " WHERE id = ? AND state = 'in_flight' AND lease_token = ? RETURNING attempts, reports_sequence,"
        " reports_status",
        (state, attempt.error_class, attempt.status_code, due_at, state, now, state, now,
         claim.delivery_id, claim.lease_token),
    ).fetchone()
    if row is None:
        raise LeaseLost(f"delivery {claim.delivery_id}: the lease {claim.lease_token} is no longer held")
    if state == DELIVERED and row[1] is not None:
        echo.status_heard(db, claim.ticket_id, claim.destination, int(row[1]), str(row[2]), now)
    db.execute(
        "INSERT OR REPLACE INTO attempts (delivery_id, number, started_at, duration_ms, status_code,"
        " error_class, outcome, response_body) VALUES (?,?,?,?,?,?,?,?)",
        (claim.delivery_id, row[0], to_ms(attempt.started_at), attempt.duration_ms, attempt.status_code,
         attempt.error_class, attempt.outcome.value, attempt.response_body),
    )


def release(claim: ClaimedDelivery, db: sqlite3.Connection) -> bool:
    return bool(db.execute(
        f"UPDATE deliveries SET {_PUT_BACK} WHERE id = ? AND state = 'in_flight' AND lease_token = ?",  # noqa: S608
        (claim.delivery_id, claim.lease_token),
    ).rowcount)


def reap_expired_leases(now: int, db: sqlite3.Connection) -> int:
    """Put back the deliveries whose lease ran out, and drop expired nonces and locks."""
    reaped = db.execute(f"UPDATE deliveries SET {_PUT_BACK} WHERE state = 'in_flight' AND lease_until <= ?",  # noqa: S608
                        (now,)).rowcount
    db.execute("DELETE FROM nonces WHERE expires_at <= ?", (now,))
    db.execute("DELETE FROM locks WHERE expires_at <= ?", (now,))
    return int(reaped)


def compact_delivered(created_before: int, limit: int, db: sqlite3.Connection) -> int:
    ids = [row[0] for row in db.execute(
        "SELECT id FROM deliveries WHERE state = 'delivered' AND compacted_at IS NULL AND created_at < ?"
        " ORDER BY created_at LIMIT ?", (created_before, limit))]
    if ids:
        marks = ",".join("?" * len(ids))
        db.execute(f"UPDATE deliveries SET body = X'', compacted_at = ? WHERE id IN ({marks})",  # noqa: S608
                   (now_ms(), *ids))
        db.execute(f"UPDATE attempts SET response_body = NULL WHERE delivery_id IN ({marks})",  # noqa: S608
                   ids)
    return len(ids)


def replay(x: Executor, flt: DeliveryFilter | None, delivery_ids: list[str] | None, dry_run: bool) -> list[str]:
    """Dead deliveries back to pending and retrying ones due now, in a transaction of its own; on the store's
    thread."""
    if delivery_ids is None and flt is None:
        raise ValueError("replay needs a filter or delivery ids; replaying every dead letter is a filter too")
    now = now_ms()
    with x.transaction(acknowledged=True) as db:
        if delivery_ids is not None:
            marks = ",".join("?" * len(delivery_ids))
            rows = db.execute(
                f"SELECT id, state FROM deliveries WHERE state IN ('dead', 'retrying') AND id IN ({marks})"  # noqa: S608
                " ORDER BY created_at, rowid",
                delivery_ids,
            ).fetchall() if delivery_ids else []
        else:
            assert flt is not None
            condition, params = _filter(DeliveryFilter(
                state=replayable(flt.state), destination=flt.destination, error_class=flt.error_class,
                since=flt.since, until=flt.until, ticket_id=flt.ticket_id, limit=flt.limit,
            ))
            rows = db.execute(
                f"SELECT id, state FROM deliveries {condition} ORDER BY created_at, rowid LIMIT ?",  # noqa: S608
                (*params, flt.limit),
            ).fetchall()
        ids = [str(r[0]) for r in rows]
        if not dry_run:
            # A replayed delivery goes back as fresh work, a retrying one is due now: an operator asked for it
            # now. Its attempts so far stay on record, and the retry policy's budget starts again from here.
            db.executemany(
                "UPDATE deliveries SET state = 'pending', claim_rank = 2 * priority, due_at = ?, dead_at = NULL,"
                " budget_attempts = attempts, budget_since = ? WHERE id = ? AND state = 'dead'",
                [(now, now, str(r[0])) for r in rows if r[1] == DEAD],
            )
            db.executemany(
                "UPDATE deliveries SET due_at = ?, budget_attempts = attempts, budget_since = ?"
                " WHERE id = ? AND state = 'retrying'",
                [(now, now, str(r[0])) for r in rows if r[1] == RETRYING],
            )
    return ids


# -- reads --------------------------------------------------------------------------------------------
def _receipt(row: Row) -> DeliveryReceipt:
    (did, ticket_id, destination, kind, idem, state, attempts, created_at, due_at, delivered_at,
     error_class, status_code) = row
    waiting = state in (PENDING, RETRYING)
    return DeliveryReceipt(
        delivery_id=str(did), ticket_id=str(ticket_id), destination=str(destination),
        kind=DeliveryKind(str(kind)), state=DeliveryState(str(state)), idempotency_key=str(idem),
        attempts=int(attempts),
        created_at=from_ms(int(created_at)),
        next_attempt_at=from_ms(int(due_at)) if waiting else None,
        delivered_at=from_ms(int(delivered_at)) if delivered_at is not None else None,
        last_error_class=str(error_class) if error_class is not None else None,
        last_status_code=int(status_code) if status_code is not None else None,
    )


def _filter(flt: DeliveryFilter) -> tuple[str, list[object]]:
    return where([
        ("state = ?", None if flt.state is None else flt.state.value),
        ("destination = ?", flt.destination),
        ("last_error_class = ?", flt.error_class),
        ("created_at >= ?", ms(flt.since)),
        ("created_at < ?", ms(flt.until)),
        ("ticket_id = ?", flt.ticket_id),
    ])


async def get_delivery(x: Executor, delivery_id: str) -> DeliveryReceipt | None:
    row = await x.run(x.fetchone, f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE id = ?",  # noqa: S608
                      (delivery_id,))
    return _receipt(row) if row else None


async def list_deliveries(x: Executor, flt: DeliveryFilter) -> list[DeliveryReceipt]:
    condition, params = _filter(flt)
    rows = await x.run(
        x.fetchall,
        f"SELECT {_DELIVERY_COLUMNS} FROM deliveries {condition} ORDER BY created_at, rowid LIMIT ?",  # noqa: S608
        (*params, flt.limit),
    )
    return [_receipt(row) for row in rows]


async def list_attempts(x: Executor, delivery_id: str) -> list[AttemptReceipt]:
    rows = await x.run(
        x.fetchall,
        "SELECT delivery_id, number, started_at, duration_ms, status_code, error_class, outcome, response_body"
        " FROM attempts WHERE delivery_id = ? ORDER BY number",
        (delivery_id,),
    )
    return [
        AttemptReceipt(
            delivery_id=r[0], number=r[1], started_at=from_ms(r[2]), duration_ms=r[3], status_code=r[4],
            error_class=r[5], outcome=AttemptOutcome(r[6]), response_body=r[7],
        )
        for r in rows
    ]


def lane_stats(x: Executor) -> dict[str, dict[str, float]]:
    """Deliveries per lane and state, and the age of each lane's oldest waiting one; on the store's thread."""
    now = now_ms()
    db = x.db
    stats: dict[str, dict[str, float]] = {}
    for destination, state, count in db.execute("SELECT destination, state, n FROM delivery_counts"):
        lane = stats.setdefault(destination, _empty_stats())
        lane[state] = float(count)
    for destination, lane in stats.items():
        # One index probe per waiting state (deliveries_state: state, destination, created_at).
        oldest = [row[0] for state in (PENDING, RETRYING, IN_FLIGHT) if lane[state] > 0
                  for row in db.execute("SELECT MIN(created_at) FROM deliveries WHERE state = ?"
                                        " AND destination = ?", (state, destination)) if row[0] is not None]
        if oldest:
            lane["oldest_waiting_age_s"] = max(0.0, (now - min(oldest)) / 1000)
    return stats


def _empty_stats() -> dict[str, float]:
    stats = {state.value: 0.0 for state in DeliveryState}
    stats["oldest_waiting_age_s"] = 0.0
    return stats
