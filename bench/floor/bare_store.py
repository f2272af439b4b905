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

from gateway.store.coalesce import Coalescer
from gateway.store.phone_hash import hash_phone

# (ticket id, partner's ticket number, ticket JSON, raw payload, SOAP nonce, complainant's phone in E.164)
Row = tuple[str, str, bytes, bytes, str | None, str | None]


class BareStore:
    """Three plain inserts per ticket (four with a nonce), one transaction per `write`."""

    def __init__(self, path: Path) -> None:
        # One writer at a time, not always on the thread that opened it (GroupCommit's writer thread).
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript("""
            CREATE TABLE tickets (ticket_id TEXT PRIMARY KEY, adapter TEXT, source_no TEXT, phone_hash TEXT,
                                  status TEXT, created_at TEXT, body TEXT, UNIQUE (adapter, source_no));
            CREATE INDEX tickets_phone ON tickets (phone_hash);
            CREATE TABLE raw (ticket_id TEXT PRIMARY KEY, body BLOB);
            CREATE TABLE deliveries (id INTEGER PRIMARY KEY, ticket_id TEXT, lane TEXT, state TEXT, priority INT,
                                     due REAL, body BLOB);
            CREATE INDEX deliveries_claim ON deliveries (lane, state, priority, due);
            CREATE INDEX deliveries_ticket ON deliveries (ticket_id);
            CREATE TABLE nonces (scope TEXT, nonce TEXT, expires REAL, PRIMARY KEY (scope, nonce));
        """)
        self.key = os.urandom(32)

    def write(self, rows: Sequence[Row]) -> None:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            for ticket_id, source_no, ticket_json, raw, nonce, phone in rows:
                phone_hash = hash_phone(phone, self.key, normalized=True) if phone else None
                self.db.execute("INSERT INTO tickets VALUES (?, ?, ?, ?, ?, ?, ?)",
                                (ticket_id, "adapter", source_no, phone_hash, "received", "2026-11-29", ticket_json))
                self.db.execute("INSERT INTO raw VALUES (?, ?)", (ticket_id, raw))
                self.db.execute("INSERT INTO deliveries (ticket_id, lane, state, priority, due, body) "
                                "VALUES (?, 'national', 'pending', 5, ?, ?)", (ticket_id, time.time(), ticket_json))
                if nonce is not None:
                    self.db.execute("INSERT INTO nonces VALUES ('province', ?, ?)", (nonce, time.time() + 600))
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

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
