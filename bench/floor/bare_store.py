"""The durable write of an intake with sqlite3 alone, for the intake floor: ticket, raw payload and national
delivery rows (and the WS-Security nonce for SOAP) with their indexes, synchronous=FULL as the gateway's
acknowledged writes; and the least an event loop can do to group such writes into shared commits."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import NamedTuple

from gateway.store.base import LinkQuery
from gateway.store.coalesce import Coalescer
from gateway.store.phone_hash import hash_phone
from gateway.store.records import to_ms
from gateway.store.sqlite.link_log import newest_bodies


class Row(NamedTuple):
    """One ticket's write. The last four are the deciding floor's (`bench/floor/decisions.py`): every delivery of
    its outbox beyond the national one, its link index keys and when it was received."""

    ticket_id: str
    source_no: str
    ticket_json: bytes
    raw: bytes
    nonce: str | None
    phone: str | None  # E.164
    side_deliveries: tuple[tuple[str, bytes], ...] = ()  # (lane, body)
    link_keys: tuple[str, ...] = ()
    received_ms: int = 0
    forwarded: bool = True  # False: held for review, no national delivery


class BareStore:
    """Three plain inserts per ticket (four with a nonce), one transaction per `write`."""

    def __init__(self, path: Path) -> None:
        # One writer at a time, not always on the thread that opened it (GroupCommit's writer thread).
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript("""
            CREATE TABLE tickets (id TEXT PRIMARY KEY, adapter TEXT, source_no TEXT, phone_hash TEXT,
                                  status TEXT, created_at TEXT, body TEXT, UNIQUE (adapter, source_no));
            CREATE INDEX tickets_phone ON tickets (phone_hash);
            CREATE TABLE raw (ticket_id TEXT PRIMARY KEY, body BLOB);
            CREATE TABLE deliveries (id INTEGER PRIMARY KEY, ticket_id TEXT, lane TEXT, state TEXT, priority INT,
                                     due REAL, body BLOB);
            CREATE INDEX deliveries_claim ON deliveries (lane, state, priority, due);
            CREATE INDEX deliveries_ticket ON deliveries (ticket_id);
            CREATE TABLE nonces (scope TEXT, nonce TEXT, expires REAL, PRIMARY KEY (scope, nonce));
            CREATE TABLE link_log (seq INTEGER PRIMARY KEY, received_at INTEGER, ticket_id TEXT, link_keys TEXT);
        """)
        self.path = path
        self.key = os.urandom(32)
        # The link keys as the gateway's SQLite store finds them: in memory, by key, (received_at, ticket_id).
        self.linked: dict[str, list[tuple[int, str]]] = {}

    def write(self, rows: Sequence[Row]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for row in rows:
                ticket_id = row.ticket_id
                phone_hash = hash_phone(row.phone, self.key, normalized=True) if row.phone else None
                self.db.execute("INSERT INTO tickets VALUES (?, ?, ?, ?, ?, ?, ?)",
                                (ticket_id, "adapter", row.source_no, phone_hash, "received", "2026-11-29",
                                 row.ticket_json.decode()))  # text, as the gateway keeps a ticket
                self.db.execute("INSERT INTO raw VALUES (?, ?)", (ticket_id, row.raw))
                if row.forwarded:
                    self.db.execute("INSERT INTO deliveries (ticket_id, lane, state, priority, due, body) "
                                    "VALUES (?, 'national', 'pending', 5, ?, ?)",
                                    (ticket_id, time.time(), row.ticket_json))
                for lane, body in row.side_deliveries:
                    self.db.execute("INSERT INTO deliveries (ticket_id, lane, state, priority, due, body) "
                                    "VALUES (?, ?, 'pending', 5, ?, ?)", (ticket_id, lane, time.time(), body))
                if row.link_keys:
                    self.db.execute("INSERT INTO link_log (received_at, ticket_id, link_keys) VALUES (?, ?, ?)",
                                    (row.received_ms, ticket_id, " ".join(row.link_keys)))
                    for key in row.link_keys:
                        self.linked.setdefault(key, []).append((row.received_ms, ticket_id))
                if row.nonce is not None:
                    self.db.execute("INSERT INTO nonces VALUES ('province', ?, ?)", (row.nonce, time.time() + 600))
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def reader(self) -> BareReads:
        """The deciding floor's reads, on a connection of their own on the event loop's thread (as the gateway's
        intake reads in place)."""
        return BareReads(sqlite3.connect(self.path, isolation_level=None, check_same_thread=False), self.linked)

    def write_all(self, rows: Sequence[Row], per_commit: int = 16) -> None:
        """`per_commit` tickets to a transaction, as group commit makes under load."""
        for start in range(0, len(rows), per_commit):
            self.write(rows[start:start + per_commit])

    def close(self) -> None:
        self.db.close()


class GroupCommit:
    """Durable writes from an event loop with one hop to a writer thread per commit, not per write: the writes
    that arrive while a commit runs all go into the next one (the gateway's own Coalescer). Each caller returns
    only after its commit."""

    def __init__(self, store: BareStore) -> None:
        self.store = store
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="floor-writer")
        self._commits: Coalescer[Row] = Coalescer(self._commit)

    async def write(self, row: Row) -> None:
        await self._commits.submit((row,))

    async def _commit(self, rows: list[Row]) -> list[Exception | None]:
        await asyncio.get_running_loop().run_in_executor(self._thread, self.store.write, rows)
        return [None] * len(rows)  # one transaction: it fails as a whole, by raising

    def close(self) -> None:
        self._thread.shutdown()
        self.store.close()


class BareReads:
    """The look-ups the gateway makes before storing a ticket, as plain indexed reads (the link candidates from the
    keys in memory, then their bodies by id, as the gateway's SQLite store)."""

    def __init__(self, db: sqlite3.Connection, linked: dict[str, list[tuple[int, str]]]) -> None:
        self.db = db
        self.linked = linked

    async def known(self, source_no: str) -> str | None:
        row = self.db.execute("SELECT id FROM tickets WHERE adapter = 'adapter' AND source_no = ?",
                              (source_no,)).fetchone()
        return None if row is None else str(row[0])

    async def candidate_bodies(self, keys: Sequence[str], query: LinkQuery) -> list[str]:
        since, until = to_ms(query.since), to_ms(query.until)
        newest: dict[str, int] = {}
        for key in keys:
            for received, ticket_id in self.linked.get(key, ()):
                if since <= received <= until and newest.get(ticket_id, -1) < received:
                    newest[ticket_id] = received
        return newest_bodies(self.db, newest, query.limit)

    def close(self) -> None:
        self.db.close()
