"""The PostgreSQL store's delivery lanes: enqueue, claims (FOR UPDATE SKIP LOCKED) and settles, receipts, replay,
compaction, lane counts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg

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
from gateway.store.postgres import echo
from gateway.store.postgres.connection import Connections
from gateway.store.postgres.where import where

PENDING = DeliveryState.PENDING.value
RETRYING = DeliveryState.RETRYING.value
IN_FLIGHT = DeliveryState.IN_FLIGHT.value
DELIVERED = DeliveryState.DELIVERED.value
DEAD = DeliveryState.DEAD.value


def insert_deliveries_sql(first: int, ticket: str, key: str, source: str = "") -> str:
    """New deliveries from the ten parallel arrays of `delivery_arrays` and a time, parameters `first` to
    `first` + 10, in outbox order so that `seq` follows it. `ticket` and `key` are the SQL of the ticket's id and
    idempotency key (an entry without a key of its own takes the ticket's); `source`, a FROM item to join."""
    p = [f"${n}" for n in range(first, first + DELIVERY_PARAMS)]
    return (
        "INSERT INTO deliveries (id, ticket_id, destination, kind, idempotency_key, body, content_type, headers,"  # noqa: S608
        " priority, state, claim_rank, due_at, created_at, reports_sequence, reports_status)"
        f" SELECT e.id, {ticket}, e.destination, e.kind, COALESCE(e.key, {key}), e.body, e.content_type,"
        f" e.headers::json, e.priority, 'pending', 2 * e.priority, {p[10]}, {p[10]}, e.reports_sequence,"
        " e.reports_status"
        f" FROM {source}unnest({p[0]}::text[], {p[1]}::text[], {p[2]}::text[], {p[3]}::text[], {p[4]}::bytea[],"
        f" {p[5]}::text[], {p[6]}::text[], {p[7]}::smallint[], {p[8]}::integer[], {p[9]}::text[])"
        " WITH ORDINALITY AS e(id, destination, kind, key, body, content_type, headers, priority, reports_sequence,"
        " reports_status, n)"
        " ORDER BY e.n"
    )


DELIVERY_PARAMS = 11  # the parameters `insert_deliveries_sql` takes: ten arrays and a time


def delivery_arrays(outbox: Sequence[OutboxEntry]) -> tuple[list[str], list[Any]]:
    """Fresh delivery ids and the parallel arrays `insert_deliveries_sql` takes (without the time)."""
    ids = [new_ulid() for _ in outbox]
    return ids, [
        ids,
        [e.destination for e in outbox],
        [e.kind.value for e in outbox],
        [e.idempotency_key for e in outbox],
        [e.body for e in outbox],
        [e.content_type for e in outbox],
        [json.dumps(e.headers, ensure_ascii=False) for e in outbox],
        [e.priority for e in outbox],
        [e.reports.sequence if e.reports else None for e in outbox],
        [e.reports.status if e.reports else None for e in outbox],
    ]


async def enqueue(db: Connections, ticket_id: str, idempotency_key: str,
                  entries: Sequence[OutboxEntry]) -> tuple[str, ...]:
    if not entries:
        return ()
    ids, arrays = delivery_arrays(entries)
    now = datetime.now(UTC)
    async with db.transaction() as conn:
        await conn.execute(insert_deliveries_sql(3, "$1", "$2"), ticket_id, idempotency_key, *arrays, now)
        await echo.statuses_enqueued(conn, ticket_id, entries, now)
    return tuple(ids)


_CLAIMED_COLUMNS = ("id, ticket_id, destination, kind, idempotency_key, body, content_type, headers, attempts,"
                    " created_at, lease_token, lease_until, budget_attempts, budget_since, claim_rank, due_at, seq,"
                    " reports_sequence, reports_status")

# Priority first, then fresh before retries (claim_rank = 2 * priority + retry), then due time. One ticket's
# deliveries to one lane go in the order they were enqueued: a delivery waits while an earlier one of its ticket on
# its lane is still pending, retrying or in flight (a row another claim holds locked is still pending in this
# statement's snapshot, so it holds its later ones back as it should). SKIP LOCKED: concurrent claims on one lane
# take different rows and never wait for each other.
_CLAIM = f"""
UPDATE deliveries AS d SET return_state = d.state, state = 'in_flight', lease_token = gen_random_uuid()::text,
       lease_until = $3, worker_id = $4
  FROM (SELECT c.id FROM deliveries AS c
         WHERE c.destination = $1 AND c.state IN ('pending', 'retrying') AND c.due_at <= $2
           AND NOT EXISTS (SELECT 1 FROM deliveries AS e
                            WHERE e.ticket_id = c.ticket_id AND e.destination = c.destination AND e.seq < c.seq
                              AND e.state IN ('pending', 'retrying', 'in_flight'))
         ORDER BY c.claim_rank, c.due_at, c.seq
         LIMIT $5
         FOR UPDATE SKIP LOCKED) AS picked
 WHERE d.id = picked.id
RETURNING {", ".join("d." + c.strip() for c in _CLAIMED_COLUMNS.split(","))}
"""  # noqa: S608 - column names only


async def claim(db: Connections, destination: str, worker_id: str, lease_seconds: float,
                limit: int) -> list[ClaimedDelivery]:
    now = datetime.now(UTC)
    lease_until = datetime.fromtimestamp(now.timestamp() + lease_seconds, UTC)
    rows = await db.fetch(_CLAIM, destination, now, lease_until, worker_id, limit)
    rows.sort(key=lambda r: (r["claim_rank"], r["due_at"], r["seq"]))
    return [ClaimedDelivery(
        delivery_id=r["id"], ticket_id=r["ticket_id"], destination=r["destination"], kind=DeliveryKind(r["kind"]),
        idempotency_key=r["idempotency_key"], body=bytes(r["body"]), content_type=r["content_type"],
        headers=json.loads(r["headers"]), attempts=r["attempts"], created_at=r["created_at"],
        lease_token=r["lease_token"], lease_until=r["lease_until"], budget_attempts=r["budget_attempts"],
        budget_since=r["budget_since"],
        reports=None if r["reports_sequence"] is None else ReportedStatus(r["reports_sequence"], r["reports_status"]),
    ) for r in rows]


# The attempt is recorded in the same statement: only if the lease was still held.
_SETTLE = f"""
WITH settled AS (
    UPDATE deliveries SET state = $3, attempts = attempts + 1, lease_token = NULL, lease_until = NULL,
           worker_id = NULL, return_state = NULL, last_error_class = $4, last_status_code = $5,
           due_at = COALESCE($6, due_at), claim_rank = 2 * priority + 1,
           delivered_at = CASE WHEN $3 = 'delivered' THEN $7 ELSE delivered_at END,
           dead_at = CASE WHEN $3 = 'dead' THEN $7 ELSE dead_at END
     WHERE id = $1 AND state = 'in_flight' AND lease_token = $2
 RETURNING id, attempts, ticket_id, destination, reports_sequence, reports_status),
recorded AS (
    INSERT INTO attempts (delivery_id, number, started_at, duration_ms, status_code, error_class, outcome,
                          response_body)
    SELECT id, attempts, $8, $9, $5, $4, $10, $11 FROM settled
    ON CONFLICT (delivery_id, number) DO UPDATE SET started_at = excluded.started_at,
       duration_ms = excluded.duration_ms, status_code = excluded.status_code, error_class = excluded.error_class,
       outcome = excluded.outcome, response_body = excluded.response_body),
{echo.HEARD_CTE}
SELECT attempts FROM settled
"""  # noqa: S608 - the echo's fragment is SQL of this package


async def settle(db: Connections, claim: ClaimedDelivery, attempt: AttemptReceipt, state: str,
                 due_at: datetime | None) -> None:
    """Record an attempt and move its delivery to `state`; LeaseLost if the claim's lease is no longer held."""
    number = await db.fetchval(
        _SETTLE, claim.delivery_id, claim.lease_token, state, attempt.error_class, attempt.status_code, due_at,
        datetime.now(UTC), attempt.started_at, attempt.duration_ms, attempt.outcome.value, attempt.response_body)
    if number is None:
        raise LeaseLost(f"delivery {claim.delivery_id}: the lease {claim.lease_token} is no longer held")


# A leased delivery back to the state it was claimed from (a fresh delivery stays ahead of retries), due at once,
# with no attempt counted: the reaper's and a release's.
_PUT_BACK = ("state = COALESCE(return_state, 'pending'), lease_token = NULL, lease_until = NULL, worker_id = NULL,"
             " return_state = NULL, due_at = LEAST(due_at, {now})")


async def release(db: Connections, claim: ClaimedDelivery) -> bool:
    status = await db.execute(
        f"UPDATE deliveries SET {_PUT_BACK.format(now='$3')}"  # noqa: S608
        " WHERE id = $1 AND state = 'in_flight' AND lease_token = $2",
        claim.delivery_id, claim.lease_token, datetime.now(UTC))
    return status != "UPDATE 0"


async def reap_expired_leases(db: Connections, now: datetime) -> int:
    """Put back the deliveries whose lease ran out, and drop expired nonces and locks, in one statement."""
    return int(await db.fetchval(
        f"WITH reaped AS (UPDATE deliveries SET {_PUT_BACK.format(now='$1')}"  # noqa: S608
        "   WHERE state = 'in_flight' AND lease_until <= $1 RETURNING 1),"
        " nonces_gone AS (DELETE FROM nonces WHERE expires_at <= $1),"
        " locks_gone AS (DELETE FROM locks WHERE expires_at <= $1)"
        " SELECT count(*) FROM reaped", now))


async def compact_delivered(db: Connections, created_before: datetime, limit: int) -> int:
    return int(await db.fetchval(
        "WITH compacted AS (UPDATE deliveries SET body = ''::bytea, compacted_at = $3"
        "   WHERE id IN (SELECT id FROM deliveries WHERE state = 'delivered' AND compacted_at IS NULL"
        "                   AND created_at < $1 ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)"
        "   RETURNING id),"
        " bodies AS (UPDATE attempts SET response_body = NULL WHERE delivery_id IN (SELECT id FROM compacted))"
        " SELECT count(*) FROM compacted", created_before, limit, datetime.now(UTC)))


def _filter(flt: DeliveryFilter, first: int = 1) -> tuple[str, list[object]]:
    return where([
        ("state = {}", None if flt.state is None else flt.state.value),
        ("destination = {}", flt.destination),
        ("last_error_class = {}", flt.error_class),
        ("created_at >= {}", flt.since),
        ("created_at < {}", flt.until),
        ("ticket_id = {}", flt.ticket_id),
    ], first)


async def replay(db: Connections, flt: DeliveryFilter | None, delivery_ids: list[str] | None,
                 dry_run: bool) -> list[str]:
    """Dead deliveries back to pending as fresh work and retrying ones due now (their attempts kept, the retry budget
    counted from now)."""
    if delivery_ids is None and flt is None:
        raise ValueError("replay needs a filter or delivery ids; replaying every dead letter is a filter too")
    if delivery_ids is not None:
        chosen = "SELECT id FROM deliveries WHERE state IN ('dead', 'retrying') AND id = ANY($1::text[])"
        params: list[object] = [delivery_ids]
        limit = ""
    else:
        assert flt is not None
        condition, params = _filter(DeliveryFilter(
            state=replayable(flt.state), destination=flt.destination, error_class=flt.error_class, since=flt.since,
            until=flt.until, ticket_id=flt.ticket_id, limit=flt.limit))
        chosen = f"SELECT id FROM deliveries {condition}"  # noqa: S608
        params.append(flt.limit)
        limit = f" LIMIT ${len(params)}"
    if dry_run:
        rows = await db.fetch(f"{chosen} ORDER BY created_at, seq{limit}", *params)
        return [r["id"] for r in rows]
    params.append(datetime.now(UTC))
    now = f"${len(params)}"
    # A dead letter goes back as fresh work, a retrying delivery is due now: an operator asked for it now. (The SET
    # expressions read the row as it was.)
    rows = await db.fetch(
        f"UPDATE deliveries AS d SET state = CASE WHEN d.state = 'dead' THEN 'pending' ELSE d.state END,"  # noqa: S608
        " claim_rank = CASE WHEN d.state = 'dead' THEN 2 * d.priority ELSE d.claim_rank END,"
        f" due_at = {now}, dead_at = NULL, budget_attempts = d.attempts, budget_since = {now}"
        f" FROM ({chosen} ORDER BY created_at, seq{limit} FOR UPDATE) AS chosen"
        " WHERE d.id = chosen.id AND d.state IN ('dead', 'retrying')"
        " RETURNING d.id, d.created_at, d.seq", *params)
    return [r["id"] for r in sorted(rows, key=lambda r: (r["created_at"], r["seq"]))]


# -- reads --------------------------------------------------------------------------------------------
_RECEIPT_COLUMNS = ("id, ticket_id, destination, kind, idempotency_key, state, attempts, created_at, due_at,"
                    " delivered_at, last_error_class, last_status_code")


def _receipt(r: asyncpg.Record) -> DeliveryReceipt:
    state = DeliveryState(r["state"])
    return DeliveryReceipt(
        delivery_id=r["id"], ticket_id=r["ticket_id"], destination=r["destination"], kind=DeliveryKind(r["kind"]),
        state=state, idempotency_key=r["idempotency_key"], attempts=r["attempts"], created_at=r["created_at"],
        next_attempt_at=r["due_at"] if state in (DeliveryState.PENDING, DeliveryState.RETRYING) else None,
        delivered_at=r["delivered_at"], last_error_class=r["last_error_class"],
        last_status_code=r["last_status_code"],
    )


async def get_delivery(db: Connections, delivery_id: str) -> DeliveryReceipt | None:
    row = await db.fetchrow(f"SELECT {_RECEIPT_COLUMNS} FROM deliveries WHERE id = $1", delivery_id)  # noqa: S608
    return _receipt(row) if row is not None else None


async def list_deliveries(db: Connections, flt: DeliveryFilter) -> list[DeliveryReceipt]:
    condition, params = _filter(flt)
    rows = await db.fetch(
        f"SELECT {_RECEIPT_COLUMNS} FROM deliveries {condition} ORDER BY created_at, seq LIMIT ${len(params) + 1}",  # noqa: S608
        *params, flt.limit)
    return [_receipt(r) for r in rows]


async def list_attempts(db: Connections, delivery_id: str) -> list[AttemptReceipt]:
    rows = await db.fetch(
        "SELECT delivery_id, number, started_at, duration_ms, status_code, error_class, outcome, response_body"
        " FROM attempts WHERE delivery_id = $1 ORDER BY number", delivery_id)
    return [AttemptReceipt(
        delivery_id=r["delivery_id"], number=r["number"], started_at=r["started_at"], duration_ms=r["duration_ms"],
        status_code=r["status_code"], error_class=r["error_class"], outcome=AttemptOutcome(r["outcome"]),
        response_body=r["response_body"]) for r in rows]


# Every statement that changes deliveries appends its change to lane_counts (schema migration 2); folding sums the
# rows of each lane and state that has more than one into one. Folds take turns (a fold that finds another under way
# leaves it to that one), so two never wait on each other's rows; what a fold does not see yet (uncommitted) it
# leaves for the next. A fold lost in a crash is lost whole, its rows still there to sum.
_FOLD_LOCK = 0x48_49_47_02  # "HIG" 2, with the schema's name: folds in other schemas do not take turns with these

_FOLD_LANE_COUNTS = """
WITH turn AS (SELECT pg_try_advisory_xact_lock($FOLD, hashtext(current_schema())) AS mine),
gone AS (DELETE FROM lane_counts
          WHERE (SELECT mine FROM turn)
            AND (destination, state) IN (SELECT destination, state FROM lane_counts GROUP BY destination, state
                                          HAVING count(*) > 1)
      RETURNING destination, state, n)
INSERT INTO lane_counts (destination, state, n)
SELECT destination, state, sum(n) FROM gone GROUP BY destination, state HAVING sum(n) <> 0
""".replace("$FOLD", str(_FOLD_LOCK))


async def fold_lane_counts(db: Connections) -> None:
    """Sum the rows lane_counts holds for each lane and state into one (lane_stats and the lease reaper call it)."""
    await db.execute(_FOLD_LANE_COUNTS)


# Counts from lane_counts; each lane's oldest waiting delivery is the first entry of deliveries_state for each of
# the three waiting states: a few index probes per lane, however many deliveries the table holds.
_LANE_STATS = """
WITH counts AS (SELECT destination, state, sum(n) AS n FROM lane_counts GROUP BY destination, state
                HAVING sum(n) <> 0)
SELECT destination, state, n, NULL::timestamptz AS oldest FROM counts
UNION ALL
SELECT lane.destination, NULL, NULL,
       LEAST((SELECT min(created_at) FROM deliveries WHERE state = 'pending' AND destination = lane.destination),
             (SELECT min(created_at) FROM deliveries WHERE state = 'retrying' AND destination = lane.destination),
             (SELECT min(created_at) FROM deliveries WHERE state = 'in_flight' AND destination = lane.destination))
  FROM (SELECT DISTINCT destination FROM counts
         WHERE state IN ('pending', 'retrying', 'in_flight')) AS lane
"""


async def lane_stats(db: Connections) -> dict[str, dict[str, float]]:
    """Deliveries per lane and state (lane_counts, folded first), and the age of each lane's oldest waiting one."""
    await fold_lane_counts(db)
    rows = await db.fetch(_LANE_STATS)
    now = datetime.now(UTC)
    stats: dict[str, dict[str, float]] = {}
    for r in rows:
        lane = stats.setdefault(r["destination"], _empty_stats())
        if r["state"] is not None:
            lane[r["state"]] = float(r["n"])
        elif r["oldest"] is not None:
            lane["oldest_waiting_age_s"] = max(0.0, (now - r["oldest"]).total_seconds())
    return stats


def _empty_stats() -> dict[str, float]:
    stats = {state.value: 0.0 for state in DeliveryState}
    stats["oldest_waiting_age_s"] = 0.0
    return stats
