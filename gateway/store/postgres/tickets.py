"""The PostgreSQL store's tickets: intake in one statement, optimistic updates, indexed searches, raw payloads."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, date, datetime
from typing import Any

import asyncpg

from contracts.delivery import OutboxEntry
from contracts.ticket import Ticket, TicketLink
from gateway.store.base import (
    ConcurrentUpdate,
    IntakeResult,
    LinkCandidate,
    LinkQuery,
    OnTimeCount,
    SourceNumber,
    TicketQuery,
    UnknownTicket,
)
from gateway.store.postgres import echo
from gateway.store.postgres.connection import Conn, Connections
from gateway.store.postgres.lanes import delivery_arrays, insert_deliveries_sql
from gateway.store.postgres.where import where
from gateway.store.records import next_revision, with_link_back
from gateway.store.ticket_index import (
    ended_limits,
    link_keys,
    next_due_on,
    query_index_values,
    ticket_index_values,
)

# A ticket's ended time limits, for the on-time counts, from the parallel arrays of `_outcome_arrays`.
_INSERT_OUTCOMES = (
    "INSERT INTO deadline_outcomes (ticket_id, position, ended_on, handler_org_code, handler_org_name, kind, outcome)"
    " SELECT {ticket}, o.n - 1, o.ended_on, o.org_code, o.org_name, o.kind, o.outcome"
    " FROM {source}unnest(${first}::date[], ${first1}::text[], ${first2}::text[], ${first3}::text[], ${first4}::text[])"
    " WITH ORDINALITY AS o(ended_on, org_code, org_name, kind, outcome, n)"
)


def _outcome_arrays(ticket: Ticket) -> list[list[Any]]:
    ended = ended_limits(ticket)
    return [[e.ended_on for e in ended], [e.handler_org_code for e in ended], [e.handler_org_name for e in ended],
            [e.kind for e in ended], [e.outcome for e in ended]]


def _outcomes_sql(ticket: str, source: str, first: int) -> str:
    return _INSERT_OUTCOMES.format(ticket=ticket, source=source, first=first, first1=first + 1, first2=first + 2,
                                   first3=first + 3, first4=first + 4)


def _transaction_if(conn: Conn, needed: bool) -> AbstractAsyncContextManager[object]:
    """A transaction around intake's statement only when more statements must share it (status callbacks in the
    outbox move the sender's echo); otherwise the one statement is its own transaction (one round trip)."""
    return conn.transaction() if needed else contextlib.nullcontext()


# Partner's number, ticket, raw payload and outbox in ONE statement (one round trip, one transaction). The number
# is taken first (`ON CONFLICT DO NOTHING` waits for a concurrent taker to commit): a second version of the matter,
# or the same one pushed again, racing from another connection or process inserts nothing at all — the ticket, its
# raw payload and its deliveries are made from the number row it did not get — and is told the holder after.
_INTAKE = f"""
WITH number AS (
    INSERT INTO source_numbers (source_system, source_ticket_no, ticket_id) VALUES ($5, $6, $1)
    ON CONFLICT DO NOTHING
    RETURNING ticket_id),
ticket AS (
    INSERT INTO tickets (id, idempotency_key, national_registration_no, adapter_id, source_system, source_ticket_no,
                         status, respondent_uscc, respondent_name, complainant_phone_hash, held, last_sequence,
                         revision, created_at, updated_at, body, next_due_on)
    SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15::json, $29 FROM number
    RETURNING id, idempotency_key),
raw AS (INSERT INTO raw_payloads (ticket_id, content_type, body, received_at) SELECT id, $16, $17, $14 FROM ticket),
outbox AS ({insert_deliveries_sql(18, "ticket.id", "ticket.idempotency_key", source="ticket, ")}),
ended AS ({_outcomes_sql("ticket.id", "ticket, ", 30)}),
links AS (INSERT INTO ticket_link_keys (link_key, received_at, ticket_id)
          SELECT k.link_key, $36, ticket.id FROM ticket, unnest($35::text[]) AS k(link_key) ON CONFLICT DO NOTHING)
SELECT id FROM ticket
"""  # noqa: S608 - the deliveries fragment is SQL of this package


async def intake(db: Connections, ticket: Ticket, body: str, raw_body: bytes, raw_content_type: str,
                 outbox: list[OutboxEntry], phone_key: bytes, link_marks: Sequence[str] = ()) -> IntakeResult:
    """Store a new ticket, its raw payload and its outbox; a ticket already stored, or another holding its partner's
    number, is found, not stored again."""
    assert ticket.idempotency_key is not None  # the contract fills it in
    now = datetime.now(UTC)
    ix = ticket_index_values(ticket, phone_key)
    ids, arrays = delivery_arrays(outbox)
    try:
        async with db.connection() as conn, _transaction_if(conn, echo.reports_any(outbox)):
            inserted = await conn.fetchval(
                _INTAKE, ticket.ticket_id, ticket.idempotency_key, ix["national_registration_no"], ix["adapter_id"],
                ticket.source.source_system, ticket.source.source_ticket_no, ix["status"], ix["respondent_uscc"],
                ix["respondent_name"], ix["complainant_phone_hash"], ix["held"], ticket.lifecycle.last_sequence,
                ticket.lifecycle.revision, now, body, raw_content_type, raw_body, *arrays, now, next_due_on(ticket),
                *_outcome_arrays(ticket), link_keys(link_marks, phone_key), ticket.source.source_received_at)
            if inserted is not None:
                await echo.statuses_enqueued(conn, ticket.ticket_id, outbox, now)
                return IntakeResult(ticket_id=ticket.ticket_id, created=True, delivery_ids=tuple(ids))
    except asyncpg.UniqueViolationError as err:  # the number was free, so no ticket holds this key: the id is taken
        raise ValueError(f"ticket id {ticket.ticket_id} is already stored for another source ticket") from err
    existing = await db.fetchval("SELECT id FROM tickets WHERE idempotency_key = $1", ticket.idempotency_key)
    if existing is not None:  # the same version again (or a duplicate stored before the numbers were kept)
        return IntakeResult(ticket_id=str(existing), created=False)
    holder = await db.fetchval("SELECT ticket_id FROM source_numbers WHERE source_system = $1"
                               " AND source_ticket_no = $2", ticket.source.source_system,
                               ticket.source.source_ticket_no)
    return IntakeResult(ticket_id=str(holder), created=False, number_taken=True)


async def save(db: Connections, ticket: Ticket, body: str, outbox: list[OutboxEntry], expected_revision: int | None,
               phone_key: bytes) -> tuple[str, ...]:
    """Replace a stored ticket (at the revision expected, when given) and enqueue its outbox, in one transaction.
    `ticket` carries its new revision already (store.next_revision)."""
    now = datetime.now(UTC)
    async with db.transaction() as conn:
        row = await conn.fetchrow("SELECT revision, idempotency_key FROM tickets WHERE id = $1 FOR UPDATE",
                                  ticket.ticket_id)
        if row is None:
            raise UnknownTicket(ticket.ticket_id)
        if expected_revision is not None and row["revision"] != expected_revision:
            raise ConcurrentUpdate(
                f"ticket {ticket.ticket_id} is at revision {row['revision']}, not {expected_revision}")
        await _replace(conn, ticket, body, phone_key, now)
        if not outbox:
            return ()
        ids, arrays = delivery_arrays(outbox)
        await conn.execute(insert_deliveries_sql(3, "$1", "$2"), ticket.ticket_id, row["idempotency_key"],
                           *arrays, now)
        await echo.statuses_enqueued(conn, ticket.ticket_id, outbox, now)
    return tuple(ids)


async def _replace(conn: Conn, ticket: Ticket, body: str, phone_key: bytes, now: datetime) -> None:
    """The stored ticket's row, its indexed columns and its ended limits replaced by `ticket`'s, in the caller's
    transaction."""
    ix = ticket_index_values(ticket, phone_key)
    await conn.execute(
        "UPDATE tickets SET national_registration_no = $2, status = $3, respondent_uscc = $4,"
        " respondent_name = $5, complainant_phone_hash = $6, held = $7, last_sequence = $8, revision = $9,"
        " updated_at = $10, body = $11::json, next_due_on = $12 WHERE id = $1",
        ticket.ticket_id, ix["national_registration_no"], ix["status"], ix["respondent_uscc"],
        ix["respondent_name"], ix["complainant_phone_hash"], ix["held"], ticket.lifecycle.last_sequence,
        ticket.lifecycle.revision, now, body, next_due_on(ticket))
    await conn.execute("DELETE FROM deadline_outcomes WHERE ticket_id = $1", ticket.ticket_id)
    await conn.execute(_outcomes_sql("$1", "", 2), ticket.ticket_id, *_outcome_arrays(ticket))


async def add_links_back(db: Connections, links: Mapping[str, TicketLink], most: int, phone_key: bytes) -> list[str]:
    """Each link shown on its ticket, in one transaction (see Store.add_links_back); the rows locked in id order,
    so two of these writes never wait on each other in a cycle."""
    now = datetime.now(UTC)
    changed = []
    async with db.transaction() as conn:
        rows = await conn.fetch("SELECT id, body, revision FROM tickets WHERE id = ANY($1::text[]) ORDER BY id"
                                " FOR UPDATE", sorted(links))
        for row in rows:
            shown = with_link_back(Ticket.model_validate_json(row["body"]), links[row["id"]], most)
            if shown is not None:
                saved = next_revision(shown, row["revision"])
                await _replace(conn, saved, saved.model_dump_json(), phone_key, now)
                changed.append(str(row["id"]))
    return changed


async def get_ticket(db: Connections, ticket_id: str) -> Ticket | None:
    body = await db.fetchval("SELECT body FROM tickets WHERE id = $1", ticket_id)
    return Ticket.model_validate_json(body) if body is not None else None


async def find_ticket_id(db: Connections, *, idempotency_key: str | None, national_registration_no: str | None,
                         source: SourceNumber | None) -> str | None:
    if source is not None:
        found = await db.fetchval("SELECT ticket_id FROM source_numbers WHERE source_system = $1"
                                  " AND source_ticket_no = $2", source.source_system, source.source_ticket_no)
    elif idempotency_key is not None:
        found = await db.fetchval("SELECT id FROM tickets WHERE idempotency_key = $1", idempotency_key)
    elif national_registration_no is not None:
        found = await db.fetchval(
            "SELECT id FROM tickets WHERE national_registration_no = $1 ORDER BY created_at, seq LIMIT 1",
            national_registration_no)
    else:
        raise ValueError("find_ticket_id needs idempotency_key, national_registration_no or source")
    return str(found) if found is not None else None


def _matching(query: TicketQuery, phone_key: bytes) -> tuple[str, list[object]]:
    exact = [(f"{index} = {{}}", value) for index, value in query_index_values(query, phone_key).items()]
    return where([*exact, ("created_at >= {}", query.since), ("created_at < {}", query.until),
                  ("next_due_on >= {}", query.due_from), ("next_due_on < {}", query.due_before)])


async def search_tickets(db: Connections, query: TicketQuery, phone_key: bytes) -> list[Ticket]:
    condition, params = _matching(query, phone_key)
    order = "created_at DESC, seq DESC" if query.order == "newest" else "next_due_on, created_at DESC, seq DESC"
    if query.order == "due" and query.due_from is None and query.due_before is None:
        condition += (" AND " if condition else "WHERE ") + "next_due_on IS NOT NULL"
    rows = await db.fetch(
        f"SELECT body FROM tickets {condition} ORDER BY {order} LIMIT ${len(params) + 1}",  # noqa: S608
        *params, query.limit)
    return [Ticket.model_validate_json(r["body"]) for r in rows]


async def count_tickets(db: Connections, query: TicketQuery, phone_key: bytes) -> int:
    condition, params = _matching(query, phone_key)
    return int(await db.fetchval(f"SELECT count(*) FROM tickets {condition}", *params))  # noqa: S608


async def on_time_counts(db: Connections, first_day: date, last_day: date) -> list[OnTimeCount]:
    rows = await db.fetch(
        "SELECT handler_org_code, max(handler_org_name) AS name, kind, count(*) FILTER (WHERE outcome = 'met') AS met,"
        " count(*) FILTER (WHERE outcome = 'missed') AS missed FROM deadline_outcomes"
        " WHERE ended_on >= $1 AND ended_on <= $2 GROUP BY handler_org_code, kind ORDER BY handler_org_code, kind",
        first_day, last_day)
    return [OnTimeCount(r["handler_org_code"], r["name"], r["kind"], int(r["met"]), int(r["missed"])) for r in rows]


async def get_raw_payload(db: Connections, ticket_id: str, key: str | None) -> tuple[bytes, str] | None:
    if key is None:
        row = await db.fetchrow("SELECT body, content_type FROM raw_payloads WHERE ticket_id = $1", ticket_id)
    else:
        row = await db.fetchrow("SELECT body, content_type FROM raw_versions WHERE ticket_id = $1 AND key = $2",
                                ticket_id, key)
    return (bytes(row["body"]), str(row["content_type"])) if row is not None else None


async def keep_raw_payload(db: Connections, ticket_id: str, key: str, body: bytes, content_type: str) -> None:
    """Keep a later version's raw payload under its key, replacing one kept before under the same key."""
    try:
        await db.execute(
            "INSERT INTO raw_versions (ticket_id, key, content_type, body, received_at) VALUES ($1, $2, $3, $4, $5)"
            " ON CONFLICT (ticket_id, key) DO UPDATE SET content_type = excluded.content_type, body = excluded.body,"
            " received_at = excluded.received_at", ticket_id, key, content_type, body, datetime.now(UTC))
    except asyncpg.ForeignKeyViolationError as err:
        raise UnknownTicket(ticket_id) from err


async def find_link_candidates(db: Connections, query: LinkQuery, phone_key: bytes) -> list[LinkCandidate]:
    keys = link_keys(query.marks, phone_key)
    if not keys or query.limit <= 0:
        return []
    # Per key the newest `limit` entries, read backwards along the primary key (a ticket among the newest `limit` of
    # all is among the newest `limit` of one of its keys): a look-up reads `limit` entries per key however many
    # tickets one mark has, where grouping the whole span read them all. Then the newest `limit` and their bodies.
    rows = await db.fetch(
        "SELECT t.body FROM tickets AS t JOIN (SELECT n.ticket_id, max(n.received_at) AS at"
        " FROM unnest($1::text[]) AS k(link_key) CROSS JOIN LATERAL (SELECT ticket_id, received_at"
        " FROM ticket_link_keys AS l WHERE l.link_key = k.link_key AND l.received_at BETWEEN $2 AND $3"
        " ORDER BY l.received_at DESC, l.ticket_id DESC LIMIT $4) AS n GROUP BY n.ticket_id"
        " ORDER BY at DESC, n.ticket_id DESC LIMIT $4) AS k ON t.id = k.ticket_id ORDER BY k.at DESC, t.id DESC",
        keys, query.since, query.until, query.limit)
    return [LinkCandidate.model_validate_json(r["body"]) for r in rows]
