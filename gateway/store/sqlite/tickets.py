"""The SQLite store's tickets: intake, updates, searches and raw payloads."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from datetime import date

from pydantic import TypeAdapter

from contracts.delivery import OutboxEntry, check_destination
from contracts.ticket import Ticket, TicketLink
from gateway.store.base import (
    ConcurrentUpdate,
    IntakeResult,
    LinkCandidate,
    LinkedIntake,
    LinkQuery,
    OnTimeCount,
    Relink,
    SourceNumber,
    TicketQuery,
    UnknownTicket,
)
from gateway.store.records import links_with, now_ms, to_ms
from gateway.store.sqlite.executor import Executor
from gateway.store.sqlite.lanes import insert_deliveries
from gateway.store.sqlite.link_log import LinkLog
from gateway.store.sqlite.where import ms, where
from gateway.store.ticket_index import (
    ended_limits,
    link_numbers,
    next_due_on,
    query_index_values,
    ticket_index_values,
)

_LINKS = TypeAdapter(list[TicketLink])


def checked_body(ticket: Ticket, outbox: list[OutboxEntry], ticket_json: str | None) -> str:
    """The JSON intake stores, once every destination of the outbox is checked."""
    for entry in outbox:
        check_destination(entry.destination)
    return ticket.model_dump_json() if ticket_json is None else ticket_json


def intake(ticket: Ticket, body: str, raw_body: bytes, raw_content_type: str, outbox: list[OutboxEntry],
           phone_key: bytes, links: LinkLog, db: sqlite3.Connection, link_keys: Sequence[int] = ()) -> IntakeResult:
    """Store a new ticket, its raw payload and its outbox; a ticket already stored is found, not stored again.
    `link_keys`: its link marks' `link_numbers`, appended to `links` at its source_received_at."""
    assert ticket.idempotency_key is not None  # the contract fills it in
    now = now_ms()
    ix = ticket_index_values(ticket, phone_key)
    # The partner's number is taken first, a write: whichever connection or process takes it holds the write lock
    # until it commits, so a second version of the matter racing this one finds it taken and stores nothing.
    taken = db.execute(
        "INSERT INTO source_numbers (source_system, source_ticket_no, ticket_id) VALUES (?,?,?)"
        " ON CONFLICT DO NOTHING RETURNING ticket_id",
        (ticket.source.source_system, ticket.source.source_ticket_no, ticket.ticket_id),
    ).fetchone()
    if taken is None:
        return _not_stored(db, ticket)
    inserted = db.execute(
        "INSERT INTO tickets (id, idempotency_key, national_registration_no, adapter_id, source_system,"
        " source_ticket_no, status, respondent_uscc, respondent_name, complainant_phone_hash, held,"
        " last_sequence, created_at, updated_at, body, next_due_on)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING RETURNING id",
        (ticket.ticket_id, ticket.idempotency_key, ix["national_registration_no"], ix["adapter_id"],
         ticket.source.source_system, ix["source_ticket_no"], ix["status"], ix["respondent_uscc"],
         ix["respondent_name"], ix["complainant_phone_hash"], ix["held"], ticket.lifecycle.last_sequence,
         now, now, body, _day(next_due_on(ticket))),
    ).fetchone()
    if inserted is None:  # the number was free, so no ticket holds this key: the ticket id is someone else's
        raise ValueError(f"ticket id {ticket.ticket_id} is already stored for another source ticket")
    db.execute(
        "INSERT INTO raw_payloads (ticket_id, content_type, body, received_at) VALUES (?,?,?,?)",
        (ticket.ticket_id, raw_content_type, raw_body, now),
    )
    if link_keys:
        links.append(db, link_keys, to_ms(ticket.source.source_received_at), ticket.ticket_id)
    _keep_outcomes(db, ticket)
    ids = insert_deliveries(db, ticket.ticket_id, ticket.idempotency_key, outbox, now)
    return IntakeResult(ticket_id=ticket.ticket_id, created=True, delivery_ids=ids)


def intake_linking(ticket: Ticket, body: str, raw_body: bytes, raw_content_type: str, outbox: list[OutboxEntry],
                   phone_key: bytes, links: LinkLog, query: LinkQuery, query_keys: Sequence[int], relink: Relink,
                   db: sqlite3.Connection, link_keys: Sequence[int] = ()) -> LinkedIntake:
    """`Store.intake_linking` in the caller's one transaction: the look-up (`query`, its marks' `link_numbers`
    `query_keys`) in `links`; with candidates, the ticket as `relink` makes it stored and the links shown back on
    the tickets it links to (a duplicate one commit, not three)."""
    bodies = link_bodies(links, query_keys, query, db)
    if not bodies:
        return LinkedIntake(intake(ticket, body, raw_body, raw_content_type, outbox, phone_key, links, db, link_keys))
    relinked = relink([LinkCandidate.model_validate_json(found) for found in bodies])
    result = intake(relinked.ticket, checked_body(relinked.ticket, relinked.outbox, relinked.ticket_json), raw_body,
                    raw_content_type, relinked.outbox, phone_key, links, db, link_keys)
    if not result.created or not relinked.backs:
        return LinkedIntake(result, relinked)
    return LinkedIntake(result, relinked, tuple(add_links_back(relinked.backs, relinked.most, db)))


def _not_stored(db: sqlite3.Connection, ticket: Ticket) -> IntakeResult:
    """Intake of a ticket whose partner's number another ticket holds: a repeat when its key is known (the same
    version again, or a duplicate stored before the numbers were kept), else a follow-up of the holder."""
    existing = db.execute("SELECT id FROM tickets WHERE idempotency_key = ?", (ticket.idempotency_key,)).fetchone()
    if existing is not None:
        return IntakeResult(ticket_id=existing[0], created=False)
    holder = db.execute("SELECT ticket_id FROM source_numbers WHERE source_system = ? AND source_ticket_no = ?",
                        (ticket.source.source_system, ticket.source.source_ticket_no)).fetchone()
    return IntakeResult(ticket_id=holder[0], created=False, number_taken=True)


def save(ticket: Ticket, body: str, outbox: list[OutboxEntry], expected_revision: int | None,
         phone_key: bytes, db: sqlite3.Connection) -> tuple[str, ...]:
    """Replace a stored ticket (at the revision expected, when given) and enqueue its outbox. `ticket` carries
    its new revision already (store.next_revision)."""
    now = now_ms()
    ix = ticket_index_values(ticket, phone_key)
    row = db.execute("SELECT revision, idempotency_key FROM tickets WHERE id = ?", (ticket.ticket_id,)).fetchone()
    if row is None:
        raise UnknownTicket(ticket.ticket_id)
    if expected_revision is not None and row[0] != expected_revision:
        raise ConcurrentUpdate(f"ticket {ticket.ticket_id} is at revision {row[0]}, not {expected_revision}")
    db.execute(
        "UPDATE tickets SET national_registration_no=?, status=?, respondent_uscc=?, respondent_name=?,"
        " complainant_phone_hash=?, held=?, last_sequence=?, revision=?, updated_at=?, body=?, next_due_on=?"
        " WHERE id=?",
        (ix["national_registration_no"], ix["status"], ix["respondent_uscc"], ix["respondent_name"],
         ix["complainant_phone_hash"], ix["held"], ticket.lifecycle.last_sequence, ticket.lifecycle.revision, now, body,
         _day(next_due_on(ticket)),
         ticket.ticket_id),
    )
    db.execute("DELETE FROM deadline_outcomes WHERE ticket_id = ?", (ticket.ticket_id,))
    _keep_outcomes(db, ticket)
    return insert_deliveries(db, ticket.ticket_id, str(row[1]), outbox, now)


def add_links_back(links: Mapping[str, TicketLink], most: int, db: sqlite3.Connection) -> list[str]:
    """Each link shown on its ticket, in the caller's one transaction (see Store.add_links_back). Only the stored
    body's links and revision change (json_set), and the row's revision: a link moves nothing a save indexes or
    counts, and reading, checking and writing the whole earlier ticket again cost most of a duplicate's intake."""
    changed = []
    for ticket_id, link in links.items():
        row = db.execute("SELECT json_extract(body, '$.links'), revision FROM tickets WHERE id = ?",
                         (ticket_id,)).fetchone()
        shown = None if row is None else links_with(_LINKS.validate_json(row[0] or "[]"), link, most)
        if shown is not None:
            revision = int(row[1]) + 1
            db.execute("UPDATE tickets SET body = json_set(body, '$.links', json(?), '$.lifecycle.revision', ?),"
                       " revision = ?, updated_at = ? WHERE id = ?",
                       (_LINKS.dump_json(shown).decode("utf-8"), revision, revision, now_ms(), ticket_id))
            changed.append(ticket_id)
    return changed


def _day(day: date | None) -> str | None:
    return None if day is None else day.isoformat()


def _keep_outcomes(db: sqlite3.Connection, ticket: Ticket) -> None:
    """The ticket's ended time limits, for the on-time counts (its rows were deleted first on a save)."""
    rows = [(ticket.ticket_id, i, e.ended_on.isoformat(), e.handler_org_code, e.handler_org_name, e.kind, e.outcome)
            for i, e in enumerate(ended_limits(ticket))]
    if rows:
        db.executemany("INSERT INTO deadline_outcomes (ticket_id, position, ended_on, handler_org_code,"
                       " handler_org_name, kind, outcome) VALUES (?,?,?,?,?,?,?)", rows)


async def get_ticket(x: Executor, ticket_id: str) -> Ticket | None:
    row = await x.run(x.fetchone, "SELECT body FROM tickets WHERE id = ?", (ticket_id,))
    return Ticket.model_validate_json(row[0]) if row else None


async def find_ticket_id(x: Executor, *, idempotency_key: str | None, national_registration_no: str | None,
                         source: SourceNumber | None) -> str | None:
    if source is not None:  # intake's look-up before every new ticket: in place, no hop to the store thread (the
        # store's intake still arbitrates a number two versions race for: this read only spares the loser its screening)
        number = (source.source_system, source.source_ticket_no)
        row = await x.read_in_place(lambda db: db.execute(
            "SELECT ticket_id FROM source_numbers WHERE source_system = ? AND source_ticket_no = ?", number).fetchone())
    elif idempotency_key is not None:
        row = await x.run(x.fetchone, "SELECT id FROM tickets WHERE idempotency_key = ?", (idempotency_key,))
    elif national_registration_no is not None:
        row = await x.run(
            x.fetchone,
            "SELECT id FROM tickets WHERE national_registration_no = ? ORDER BY created_at LIMIT 1",
            (national_registration_no,),
        )
    else:
        raise ValueError("find_ticket_id needs idempotency_key, national_registration_no or source")
    return str(row[0]) if row else None


def _matching(query: TicketQuery, phone_key: bytes) -> tuple[str, list[object]]:
    exact = [(f"{index} = ?", value) for index, value in query_index_values(query, phone_key).items()]
    return where([*exact, ("created_at >= ?", ms(query.since)), ("created_at < ?", ms(query.until)),
                  ("next_due_on >= ?", _day(query.due_from)), ("next_due_on < ?", _day(query.due_before))])


async def search_tickets(x: Executor, query: TicketQuery, phone_key: bytes) -> list[Ticket]:
    condition, params = _matching(query, phone_key)
    order = "created_at DESC, rowid DESC" if query.order == "newest" else "next_due_on, created_at DESC, rowid DESC"
    if query.order == "due" and query.due_from is None and query.due_before is None:
        condition += (" AND " if condition else "WHERE ") + "next_due_on IS NOT NULL"
    sql = f"SELECT body FROM tickets {condition} ORDER BY {order} LIMIT ?"  # noqa: S608
    rows = await x.run(x.fetchall, sql, (*params, query.limit))
    return [Ticket.model_validate_json(str(row[0])) for row in rows]


def link_bodies(links: LinkLog, keys: Sequence[int], query: LinkQuery, db: sqlite3.Connection) -> list[str]:
    """The bodies of the newest `query.limit` tickets indexed under any of `keys` in the query's span."""
    if not keys or query.limit <= 0:
        return []
    return links.find(db, keys, to_ms(query.since), to_ms(query.until), query.limit)


async def find_link_candidates(x: Executor, links: LinkLog, query: LinkQuery,
                               phone_key: bytes) -> list[LinkCandidate]:
    keys = link_numbers(query.marks, phone_key)
    # On the store thread: the link log's memory is kept by that thread alone.
    bodies = await x.run(lambda: link_bodies(links, keys, query, x.db))
    return [LinkCandidate.model_validate_json(body) for body in bodies]


async def count_tickets(x: Executor, query: TicketQuery, phone_key: bytes) -> int:
    condition, params = _matching(query, phone_key)
    row = await x.run(x.fetchone, f"SELECT COUNT(*) FROM tickets {condition}", tuple(params))  # noqa: S608
    return int(row[0]) if row else 0


async def on_time_counts(x: Executor, first_day: date, last_day: date) -> list[OnTimeCount]:
    rows = await x.run(
        x.fetchall,
        "SELECT handler_org_code, MAX(handler_org_name), kind, SUM(outcome = 'met'), SUM(outcome = 'missed')"
        " FROM deadline_outcomes WHERE ended_on >= ? AND ended_on <= ?"
        " GROUP BY handler_org_code, kind ORDER BY handler_org_code, kind",
        (first_day.isoformat(), last_day.isoformat()),
    )
    return [OnTimeCount(str(r[0]), str(r[1]), str(r[2]), int(r[3]), int(r[4])) for r in rows]


async def get_raw_payload(x: Executor, ticket_id: str, key: str | None) -> tuple[bytes, str] | None:
    if key is None:
        row = await x.run(x.fetchone, "SELECT body, content_type FROM raw_payloads WHERE ticket_id = ?", (ticket_id,))
    else:
        row = await x.run(x.fetchone, "SELECT body, content_type FROM raw_versions WHERE ticket_id = ? AND key = ?",
                          (ticket_id, key))
    return (bytes(row[0]), str(row[1])) if row else None


def keep_raw_payload(ticket_id: str, key: str, body: bytes, content_type: str, db: sqlite3.Connection) -> None:
    """Keep a later version's raw payload under its key, replacing one kept before under the same key."""
    if db.execute("SELECT 1 FROM tickets WHERE id = ?", (ticket_id,)).fetchone() is None:
        raise UnknownTicket(ticket_id)
    db.execute("INSERT INTO raw_versions (ticket_id, key, content_type, body, received_at) VALUES (?,?,?,?,?)"
               " ON CONFLICT (ticket_id, key) DO UPDATE SET content_type = excluded.content_type,"
               " body = excluded.body, received_at = excluded.received_at",
               (ticket_id, key, content_type, body, now_ms()))
