"""The embedded store: one SQLite file in WAL mode, written by one connection on one dedicated thread."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import secrets
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

from ulid import ULID

from contracts.delivery import (
    AttemptOutcome,
    AttemptReceipt,
    ClaimedDelivery,
    DeliveryKind,
    DeliveryReceipt,
    DeliveryState,
    OutboxEntry,
    check_destination,
)
from contracts.errors import FieldError
from contracts.ticket import Ticket
from gateway.store.base import (
    COUNTS_RETENTION_S,
    AuditEntry,
    AuditQuery,
    ConcurrentUpdate,
    DeliveryFilter,
    IntakeResult,
    LeaseLost,
    QuarantinedPayload,
    Store,
    TicketQuery,
    UnknownTicket,
)
from gateway.store.loop_writer import LoopWriter, WriterBusy
from gateway.store.phone_hash import KEY_ENV, KEY_FILE, PhoneKeyMismatch, hash_phone, key_fingerprint
from gateway.store.records import (
    attempt_to_record,
    from_ms,
    minute_start_ms,
    now_ms,
    ticket_index_values,
    to_ms,
)
from gateway.store.store_thread import StoreThread, answer

T = TypeVar("T")
Row = tuple[Any, ...]
Sync = Literal["OFF", "NORMAL", "FULL", "EXTRA"]

# Durability. In WAL mode synchronous=NORMAL survives a crash of the process but not of the machine
# (power loss may roll back the last commits); FULL syncs the WAL at every commit. A partner is told
# "stored" only after intake commits, and an enqueued callback must not vanish, so those writes (and
# the other ones somebody was promised) run at `acknowledged_sync`, FULL by default. Claims and
# settlements run at NORMAL: losing one to a power cut means a delivery is sent again, which
# at-least-once delivery with an idempotency key already allows. bench/store measures both.
ACKNOWLEDGED_SYNC: Sync = "FULL"

# The claim order of a lane: priority first, then fresh before retries (rank = 2*priority + retry). A delivery
# waiting behind an earlier one of its ticket on its lane is parked: its rank is raised by _PARKED.
_PARKED = 100
_PENDING = DeliveryState.PENDING.value
_RETRYING = DeliveryState.RETRYING.value
_IN_FLIGHT = DeliveryState.IN_FLIGHT.value
_DELIVERED = DeliveryState.DELIVERED.value
_DEAD = DeliveryState.DEAD.value

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema.
    """
    CREATE TABLE tickets (
        id                       TEXT PRIMARY KEY,
        idempotency_key          TEXT NOT NULL UNIQUE,
        national_registration_no TEXT,
        adapter_id               TEXT NOT NULL,
        source_system            TEXT NOT NULL,
        source_ticket_no         TEXT NOT NULL,
        status                   TEXT NOT NULL,
        respondent_uscc          TEXT,
        respondent_name          TEXT,
        complainant_phone_hash   TEXT,
        last_sequence            INTEGER NOT NULL,
        created_at               INTEGER NOT NULL,
        updated_at               INTEGER NOT NULL,
        body                     TEXT NOT NULL
    );
    CREATE INDEX tickets_national_no ON tickets(national_registration_no)
        WHERE national_registration_no IS NOT NULL;
    CREATE INDEX tickets_adapter ON tickets(adapter_id, created_at);
    CREATE INDEX tickets_status ON tickets(status, created_at);
    CREATE INDEX tickets_created ON tickets(created_at);
    CREATE INDEX tickets_source_no ON tickets(source_ticket_no);
    CREATE INDEX tickets_uscc ON tickets(respondent_uscc) WHERE respondent_uscc IS NOT NULL;
    CREATE INDEX tickets_respondent_name ON tickets(respondent_name) WHERE respondent_name IS NOT NULL;
    CREATE INDEX tickets_phone ON tickets(complainant_phone_hash) WHERE complainant_phone_hash IS NOT NULL;

    CREATE TABLE raw_payloads (
        ticket_id    TEXT PRIMARY KEY REFERENCES tickets(id),
        content_type TEXT NOT NULL,
        body         BLOB NOT NULL,
        received_at  INTEGER NOT NULL
    );

    CREATE TABLE deliveries (
        id               TEXT PRIMARY KEY,
        ticket_id        TEXT NOT NULL,
        destination      TEXT NOT NULL,
        kind             TEXT NOT NULL,
        idempotency_key  TEXT NOT NULL,
        body             BLOB NOT NULL,
        content_type     TEXT NOT NULL,
        headers          TEXT NOT NULL,
        priority         INTEGER NOT NULL,
        state            TEXT NOT NULL,
        claim_rank       INTEGER NOT NULL,
        due_at           INTEGER NOT NULL,
        attempts         INTEGER NOT NULL DEFAULT 0,
        created_at       INTEGER NOT NULL,
        lease_token      TEXT,
        lease_until      INTEGER,
        worker_id        TEXT,
        return_state     TEXT,
        delivered_at     INTEGER,
        dead_at          INTEGER,
        last_error_class TEXT,
        last_status_code INTEGER
    );
    CREATE INDEX deliveries_claim ON deliveries(destination, claim_rank, due_at)
        WHERE state IN ('pending', 'retrying');
    CREATE INDEX deliveries_leases ON deliveries(lease_until) WHERE state = 'in_flight';
    CREATE INDEX deliveries_ticket ON deliveries(ticket_id);
    CREATE INDEX deliveries_state ON deliveries(state, destination, created_at);

    CREATE TABLE attempts (
        delivery_id   TEXT NOT NULL,
        number        INTEGER NOT NULL,
        started_at    INTEGER NOT NULL,
        duration_ms   REAL NOT NULL,
        status_code   INTEGER,
        error_class   TEXT,
        outcome       TEXT NOT NULL,
        response_body TEXT,
        PRIMARY KEY (delivery_id, number)
    );

    CREATE TABLE quarantine (
        id                 TEXT PRIMARY KEY,
        adapter_id         TEXT NOT NULL,
        received_at        INTEGER NOT NULL,
        content_type       TEXT NOT NULL,
        body               BLOB NOT NULL,
        errors             TEXT NOT NULL,
        resolved_ticket_id TEXT
    );
    CREATE INDEX quarantine_adapter ON quarantine(adapter_id, received_at);
    CREATE INDEX quarantine_received ON quarantine(received_at);

    CREATE TABLE cursors (adapter_id TEXT PRIMARY KEY, cursor TEXT NOT NULL, updated_at INTEGER NOT NULL);
    CREATE TABLE locks (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at INTEGER NOT NULL);
    CREATE TABLE nonces (
        scope      TEXT NOT NULL,
        nonce      TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (scope, nonce)
    );
    CREATE INDEX nonces_expiry ON nonces(expires_at);
    """,
    # 2: operations - the audit log of operator actions, per-minute counters for the dashboard's chart.
    """
    CREATE TABLE audit_log (
        id         TEXT PRIMARY KEY,
        at         INTEGER NOT NULL,
        actor      TEXT NOT NULL,
        role       TEXT NOT NULL,
        action     TEXT NOT NULL,
        outcome    TEXT NOT NULL,
        ticket_ids TEXT NOT NULL,
        detail     TEXT NOT NULL
    );
    CREATE INDEX audit_at ON audit_log(at);
    CREATE TABLE audit_tickets (
        ticket_id TEXT NOT NULL,
        audit_id  TEXT NOT NULL,
        PRIMARY KEY (ticket_id, audit_id)
    );
    CREATE TABLE minute_counts (
        minute INTEGER NOT NULL,
        name   TEXT NOT NULL,
        count  INTEGER NOT NULL,
        PRIMARY KEY (minute, name)
    );
    """,
    # 3: running counts of deliveries per lane and state, and of tickets per adapter, kept by triggers in the
    # same transactions as the rows, so /metrics and the dashboard read a few rows however long the history.
    """
    CREATE TABLE delivery_counts (
        destination TEXT NOT NULL,
        state       TEXT NOT NULL,
        n           INTEGER NOT NULL,
        PRIMARY KEY (destination, state)
    ) WITHOUT ROWID;
    INSERT INTO delivery_counts (destination, state, n)
        SELECT destination, state, COUNT(*) FROM deliveries GROUP BY destination, state;
    CREATE TRIGGER deliveries_count_insert AFTER INSERT ON deliveries BEGIN
        INSERT INTO delivery_counts (destination, state, n) VALUES (NEW.destination, NEW.state, 1)
            ON CONFLICT (destination, state) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER deliveries_count_update AFTER UPDATE OF state, destination ON deliveries
        WHEN OLD.state IS NOT NEW.state OR OLD.destination IS NOT NEW.destination BEGIN
        UPDATE delivery_counts SET n = n - 1 WHERE destination = OLD.destination AND state = OLD.state;
        INSERT INTO delivery_counts (destination, state, n) VALUES (NEW.destination, NEW.state, 1)
            ON CONFLICT (destination, state) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER deliveries_count_delete AFTER DELETE ON deliveries BEGIN
        UPDATE delivery_counts SET n = n - 1 WHERE destination = OLD.destination AND state = OLD.state;
    END;
    CREATE TABLE ticket_counts (
        adapter_id TEXT PRIMARY KEY,
        n          INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO ticket_counts (adapter_id, n) SELECT adapter_id, COUNT(*) FROM tickets GROUP BY adapter_id;
    CREATE TRIGGER tickets_count_insert AFTER INSERT ON tickets BEGIN
        INSERT INTO ticket_counts (adapter_id, n) VALUES (NEW.adapter_id, 1)
            ON CONFLICT (adapter_id) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER tickets_count_update AFTER UPDATE OF adapter_id ON tickets
        WHEN OLD.adapter_id IS NOT NEW.adapter_id BEGIN
        UPDATE ticket_counts SET n = n - 1 WHERE adapter_id = OLD.adapter_id;
        INSERT INTO ticket_counts (adapter_id, n) VALUES (NEW.adapter_id, 1)
            ON CONFLICT (adapter_id) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER tickets_count_delete AFTER DELETE ON tickets BEGIN
        UPDATE ticket_counts SET n = n - 1 WHERE adapter_id = OLD.adapter_id;
    END;
    """,
    # 4: a replayed dead letter gets the retry policy's whole budget again, counted from its replay.
    """
    ALTER TABLE deliveries ADD COLUMN budget_attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deliveries ADD COLUMN budget_since INTEGER;
    """,
    # 5: compaction of old delivered deliveries (their bodies dropped, their records kept).
    """
    ALTER TABLE deliveries ADD COLUMN compacted_at INTEGER;
    CREATE INDEX deliveries_compactable ON deliveries(created_at) WHERE state = 'delivered' AND compacted_at IS NULL;
    """,
    # 6: one ticket's deliveries to a lane go in order; those waiting behind an earlier one are parked (claim rank
    # + 100 = _PARKED, outside the claim's index range) so that a claim never scans them, and the settle of the one
    # ahead (delivered or dead) lets the next go. Kept by triggers, in the transaction of each write.
    """
    UPDATE deliveries SET claim_rank = claim_rank + 100
     WHERE state IN ('pending', 'retrying') AND claim_rank < 100 AND EXISTS (
           SELECT 1 FROM deliveries AS e WHERE e.ticket_id = deliveries.ticket_id
              AND e.destination = deliveries.destination AND e.rowid < deliveries.rowid
              AND e.state IN ('pending', 'retrying', 'in_flight'));
    CREATE TRIGGER deliveries_order_park AFTER INSERT ON deliveries
    WHEN EXISTS (SELECT 1 FROM deliveries AS e WHERE e.ticket_id = NEW.ticket_id
                    AND e.destination = NEW.destination AND e.rowid < NEW.rowid
                    AND e.state IN ('pending', 'retrying', 'in_flight')) BEGIN
        UPDATE deliveries SET claim_rank = claim_rank + 100 WHERE rowid = NEW.rowid;
    END;
    CREATE TRIGGER deliveries_order_next AFTER UPDATE OF state ON deliveries
    WHEN NEW.state IN ('delivered', 'dead') AND OLD.state NOT IN ('delivered', 'dead') BEGIN
        UPDATE deliveries SET claim_rank = claim_rank - 100
         WHERE rowid = (SELECT rowid FROM deliveries WHERE ticket_id = NEW.ticket_id
                           AND destination = NEW.destination AND state IN ('pending', 'retrying', 'in_flight')
                         ORDER BY rowid LIMIT 1)
           AND claim_rank >= 100;
    END;
    CREATE TRIGGER deliveries_order_replay AFTER UPDATE OF state ON deliveries
    WHEN OLD.state = 'dead' AND NEW.state = 'pending' BEGIN
        UPDATE deliveries SET claim_rank = claim_rank + 100
         WHERE ticket_id = NEW.ticket_id AND destination = NEW.destination AND rowid > NEW.rowid
           AND state IN ('pending', 'retrying') AND claim_rank < 100;
        UPDATE deliveries SET claim_rank = claim_rank + 100
         WHERE rowid = NEW.rowid AND claim_rank < 100 AND EXISTS (
               SELECT 1 FROM deliveries AS e WHERE e.ticket_id = NEW.ticket_id
                  AND e.destination = NEW.destination AND e.rowid < NEW.rowid
                  AND e.state IN ('pending', 'retrying', 'in_flight'));
    END;
    """,
    # 7: facts about the file itself: the fingerprint of the key its phone index was made with.
    """
    CREATE TABLE store_facts (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
)

_DELIVERY_COLUMNS = (
    "id, ticket_id, destination, kind, idempotency_key, state, attempts, created_at, due_at, delivered_at, "
    "last_error_class, last_status_code"
)


@dataclass(frozen=True)
class _PendingWrite:
    """One write waiting for its group's transaction, and the future its caller awaits on its own loop."""

    write: Callable[[sqlite3.Connection], Any]
    loop: asyncio.AbstractEventLoop
    done: asyncio.Future[Any]


@dataclass
class _WriteGroup:
    """The writes waiting for the next transaction at one durability level."""

    waiting: list[_PendingWrite] = field(default_factory=list)
    flush_queued: bool = False


# A leased delivery back to the state it was claimed from (a fresh delivery stays ahead of retries), with no
# attempt counted: the reaper's and a release's.
_PUT_BACK = ("state = COALESCE(return_state, 'pending'), lease_token = NULL, lease_until = NULL, worker_id = NULL,"
             " return_state = NULL")


def _statements(script: str) -> Iterator[str]:
    """The statements of a migration script, a trigger's body (with its own semicolons) kept whole."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        raise ValueError(f"an incomplete SQL statement ends the migration script: {pending.strip()[:80]!r}")


def _answer_all(answers: list[tuple[asyncio.Future[Any], object]]) -> None:
    # A caller that gave up (cancelled) is not answered; what was written stays, as after any commit.
    for done, result in answers:
        answer(done, result)


class SqliteStore(Store):
    """Tickets, lanes and small coordination records in one SQLite file, for a single node."""

    def __init__(self, path: Path | str, phone_hash_key: bytes, *,
                 acknowledged_sync: Sync = ACKNOWLEDGED_SYNC, busy_timeout_s: float = 10.0,
                 checkpoint_every: int = 500) -> None:
        self.path = Path(path)
        self._phone_key = phone_hash_key
        self._ack_sync = acknowledged_sync
        self._busy_timeout_ms = int(busy_timeout_s * 1000)
        self._thread: StoreThread | None = None
        self._conn: sqlite3.Connection | None = None
        # Group commit: writes that arrive while the store thread is busy share the next transaction (and its
        # fsync), keyed by whether they are acknowledged (synchronous=FULL) or not (NORMAL).
        self._groups = {True: _WriteGroup(), False: _WriteGroup()}
        self._groups_lock = threading.Lock()
        self._loop_writer: LoopWriter | None = None  # short NORMAL writes, in place on the event loop's thread
        self._checkpoint_every = checkpoint_every  # the loop writer's commits between checkpoints
        self._checkpoint_queued = False

    # -- plumbing ---------------------------------------------------------------------------------
    async def _run(self, fn: Callable[..., T], *args: object) -> T:
        # Every sqlite3 call runs on the store's own thread: the event loop never blocks on disk, and
        # the one connection is only ever used from the thread that made it.
        if self._thread is None:
            raise RuntimeError("the SQLite store is not open; await store.open() first")
        return await self._thread.run(functools.partial(fn, *args))

    async def _grouped(self, write: Callable[[sqlite3.Connection], T], *, acknowledged: bool) -> T:
        """Run `write` on the store thread inside the next group transaction; its result once committed."""
        if self._thread is None:
            raise RuntimeError("the SQLite store is not open; await store.open() first")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        group = self._groups[acknowledged]
        with self._groups_lock:
            group.waiting.append(_PendingWrite(write, loop, done))
            schedule = not group.flush_queued
            group.flush_queued = True
        if schedule:
            try:
                self._thread.submit(functools.partial(self._flush_group_sync, acknowledged))
            except RuntimeError:  # the store is closing: take the write back, leave no flush expected
                with self._groups_lock:
                    group.waiting = [p for p in group.waiting if p.done is not done]
                    group.flush_queued = False
                raise
        return await done

    async def _in_place(self, write: Callable[[sqlite3.Connection], T]) -> T:
        """A short unacknowledged write (a claim, a settle, a nonce) on the loop writer's connection, without a
        hop to the store thread; grouped on that thread instead while another connection holds the write lock."""
        if self._loop_writer is not None:
            with contextlib.suppress(WriterBusy):
                return self._loop_writer.write(write)
        return await self._grouped(write, acknowledged=False)

    def _checkpoint_soon(self) -> None:
        """The loop writer never checkpoints (that fsyncs): the store thread does, in RESTART mode, so that
        the next write starts the log afresh even while writes keep coming (a passive checkpoint is always a
        few commits behind them, and the log would only grow). One at a time."""
        if self._thread is None or self._checkpoint_queued:
            return
        self._checkpoint_queued = True
        try:
            self._thread.submit(self._checkpoint_sync)
        except RuntimeError:  # closing: the last close checkpoints anyway
            self._checkpoint_queued = False

    def _checkpoint_sync(self) -> None:
        self._checkpoint_queued = False
        if self._conn is not None:
            self._conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()

    def _flush_group_sync(self, acknowledged: bool) -> None:
        """Every write of the group waiting now, in one transaction with one commit (one fsync when
        acknowledged), each in a savepoint of its own so that one failing write fails alone; each caller hears
        only after the commit. Writes arriving meanwhile queue the group's next flush behind this one."""
        group = self._groups[acknowledged]
        with self._groups_lock:
            batch, group.waiting = group.waiting, []
            group.flush_queued = False
        answers: list[tuple[_PendingWrite, object]] = []
        try:
            with self._write(acknowledged=acknowledged) as db:
                if len(batch) == 1:  # alone: its failure rolls the transaction back, no savepoint needed
                    answers.append((batch[0], batch[0].write(db)))
                else:
                    for pending in batch:
                        db.execute("SAVEPOINT grouped")
                        try:
                            answers.append((pending, pending.write(db)))
                        except Exception as err:  # this write alone is undone and refused: the others go on
                            db.execute("ROLLBACK TO grouped")
                            answers.append((pending, err))
                        db.execute("RELEASE grouped")
        except BaseException as err:  # the transaction or its commit failed: nothing of the batch is stored
            answers = [(pending, err) for pending in batch]
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], object]]] = {}
        for pending, result in answers:
            by_loop.setdefault(pending.loop, []).append((pending.done, result))
        for loop, results in by_loop.items():  # one wake-up of each waiting loop for the whole group
            with contextlib.suppress(RuntimeError):  # that event loop is closed: nobody waits
                loop.call_soon_threadsafe(_answer_all, results)

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("the SQLite store is not open")
        return self._conn

    @contextmanager
    def _write(self, *, acknowledged: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction; BEGIN IMMEDIATE takes the write lock up front so it never deadlocks."""
        db = self._db
        if acknowledged and self._ack_sync != "NORMAL":
            db.execute(f"PRAGMA synchronous={self._ack_sync}")
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            if acknowledged and self._ack_sync != "NORMAL":
                db.execute("PRAGMA synchronous=NORMAL")

    # -- life cycle -------------------------------------------------------------------------------
    async def open(self) -> None:
        if self._thread is not None:
            return
        self._groups = {True: _WriteGroup(), False: _WriteGroup()}  # nothing left over from before a close
        self._thread = StoreThread(f"sqlite-store-{self.path.name}")
        try:
            await self._run(self._open_sync)
        except BaseException:
            self._thread.shutdown()
            self._thread = None
            raise
        self._loop_writer = LoopWriter(self.path, self._checkpoint_soon, checkpoint_every=self._checkpoint_every)

    def _open_sync(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=self._busy_timeout_ms / 1000)
        conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.close()
            raise RuntimeError(f"{self.path}: SQLite refused WAL mode (got {mode}); is it on a network file system?")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        self._conn = conn
        try:
            self._migrate()
            self._check_phone_key()
        except BaseException:
            conn.close()
            self._conn = None
            raise

    def _check_phone_key(self) -> None:
        """A search by phone finds only what was indexed with the same key: the first gateway to open the file
        records its key's fingerprint (it does not reveal the key), and one with another key refuses to open it."""
        mine = key_fingerprint(self._phone_key)
        db = self._db
        db.execute("INSERT OR IGNORE INTO store_facts (name, value) VALUES ('phone_key_fingerprint', ?)", (mine,))
        recorded = db.execute("SELECT value FROM store_facts WHERE name = 'phone_key_fingerprint'").fetchone()[0]
        if recorded != mine:
            raise PhoneKeyMismatch(
                f"this gateway's phone hash key is not the one the tickets in {self.path} were indexed with: set "
                f"{KEY_ENV} to that key (a gateway without {KEY_ENV} keeps its key in <data_dir>/{KEY_FILE})")

    def _migrate(self) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > len(MIGRATIONS):
                raise RuntimeError(
                    f"{self.path} has schema version {version}, newer than this gateway knows "
                    f"({len(MIGRATIONS)}); run a newer gateway or restore a backup"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in _statements(script):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version={number}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    async def close(self) -> None:
        if self._thread is None:
            return
        if self._loop_writer is not None:
            self._loop_writer.close()
            self._loop_writer = None
        try:
            await self._run(self._close_sync)
        finally:
            self._thread.shutdown()
            self._thread = None

    def _close_sync(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    async def health(self) -> dict[str, object]:
        return await self._run(self._health_sync)

    def _health_sync(self) -> dict[str, object]:
        db = self._db
        sync_names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        return {
            "store": "sqlite",
            "reachable": True,
            "persistent": True,
            "path": str(self.path),
            "journal_mode": db.execute("PRAGMA journal_mode").fetchone()[0],
            "synchronous": sync_names.get(db.execute("PRAGMA synchronous").fetchone()[0], "?"),
            "acknowledged_synchronous": self._ack_sync,
            "schema_version": db.execute("PRAGMA user_version").fetchone()[0],
            "warnings": [],
        }

    # -- tickets ----------------------------------------------------------------------------------
    async def intake(self, ticket: Ticket, raw_body: bytes, raw_content_type: str,
                     outbox: list[OutboxEntry], *, ticket_json: str | None = None) -> IntakeResult:
        for entry in outbox:
            check_destination(entry.destination)
        body = ticket.model_dump_json() if ticket_json is None else ticket_json
        return await self._grouped(functools.partial(self._intake_in, ticket, body, raw_body, raw_content_type,
                                                     outbox), acknowledged=True)

    def _intake_in(self, ticket: Ticket, body: str, raw_body: bytes, raw_content_type: str,
                   outbox: list[OutboxEntry], db: sqlite3.Connection) -> IntakeResult:
        assert ticket.idempotency_key is not None  # the contract fills it in
        now = now_ms()
        ix = ticket_index_values(ticket, self._phone_key)
        # The UNIQUE constraint decides a race, whichever connection or process loses it.
        inserted = db.execute(
            "INSERT INTO tickets (id, idempotency_key, national_registration_no, adapter_id, source_system,"
            " source_ticket_no, status, respondent_uscc, respondent_name, complainant_phone_hash,"
            " last_sequence, created_at, updated_at, body)"
            " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING RETURNING id",
            (ticket.ticket_id, ticket.idempotency_key, ix["national_registration_no"], ix["adapter_id"],
             ticket.source.source_system, ix["source_ticket_no"], ix["status"], ix["respondent_uscc"],
             ix["respondent_name"], ix["complainant_phone_hash"], ticket.lifecycle.last_sequence,
             now, now, body),
        ).fetchone()
        if inserted is None:
            existing = db.execute(
                "SELECT id FROM tickets WHERE idempotency_key = ?", (ticket.idempotency_key,)
            ).fetchone()
            if existing is None:
                raise ValueError(f"ticket id {ticket.ticket_id} is already stored for another source ticket")
            return IntakeResult(ticket_id=existing[0], created=False)
        db.execute(
            "INSERT INTO raw_payloads (ticket_id, content_type, body, received_at) VALUES (?,?,?,?)",
            (ticket.ticket_id, raw_content_type, raw_body, now),
        )
        ids = self._insert_deliveries(db, ticket.ticket_id, ticket.idempotency_key, outbox, now)
        return IntakeResult(ticket_id=ticket.ticket_id, created=True, delivery_ids=ids)

    @staticmethod
    def _insert_deliveries(db: sqlite3.Connection, ticket_id: str, idempotency_key: str,
                           outbox: list[OutboxEntry], now: int) -> tuple[str, ...]:
        ids: list[str] = []
        for entry in outbox:
            delivery_id = str(ULID())
            db.execute(
                "INSERT INTO deliveries (id, ticket_id, destination, kind, idempotency_key, body, content_type,"
                " headers, priority, state, claim_rank, due_at, created_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (delivery_id, ticket_id, entry.destination, entry.kind.value,
                 entry.idempotency_key or idempotency_key, entry.body, entry.content_type,
                 json.dumps(entry.headers, ensure_ascii=False), entry.priority, _PENDING,
                 2 * entry.priority, now, now),
            )
            ids.append(delivery_id)
        return tuple(ids)

    async def get_ticket(self, ticket_id: str) -> Ticket | None:
        row = await self._run(self._fetchone, "SELECT body FROM tickets WHERE id = ?", (ticket_id,))
        return Ticket.model_validate_json(row[0]) if row else None

    def _fetchone(self, sql: str, params: tuple[object, ...]) -> Row | None:
        row: Row | None = self._db.execute(sql, params).fetchone()
        return row

    def _fetchall(self, sql: str, params: tuple[object, ...]) -> list[Row]:
        return list(self._db.execute(sql, params).fetchall())

    async def find_ticket_id(self, *, idempotency_key: str | None = None,
                             national_registration_no: str | None = None) -> str | None:
        if idempotency_key is not None:
            row = await self._run(self._fetchone, "SELECT id FROM tickets WHERE idempotency_key = ?",
                                  (idempotency_key,))
        elif national_registration_no is not None:
            row = await self._run(
                self._fetchone,
                "SELECT id FROM tickets WHERE national_registration_no = ? ORDER BY created_at LIMIT 1",
                (national_registration_no,),
            )
        else:
            raise ValueError("find_ticket_id needs idempotency_key or national_registration_no")
        return str(row[0]) if row else None

    async def save_ticket(self, ticket: Ticket, outbox: list[OutboxEntry], *,
                          expected_sequence: int | None = None) -> tuple[str, ...]:
        for entry in outbox:
            check_destination(entry.destination)
        return await self._run(self._save_sync, ticket, ticket.model_dump_json(), outbox, expected_sequence)

    def _save_sync(self, ticket: Ticket, body: str, outbox: list[OutboxEntry],
                   expected_sequence: int | None) -> tuple[str, ...]:
        now = now_ms()
        ix = ticket_index_values(ticket, self._phone_key)
        with self._write(acknowledged=True) as db:
            row = db.execute("SELECT last_sequence, idempotency_key FROM tickets WHERE id = ?",
                             (ticket.ticket_id,)).fetchone()
            if row is None:
                raise UnknownTicket(ticket.ticket_id)
            if expected_sequence is not None and row[0] != expected_sequence:
                raise ConcurrentUpdate(
                    f"ticket {ticket.ticket_id} is at sequence {row[0]}, not {expected_sequence}"
                )
            db.execute(
                "UPDATE tickets SET national_registration_no=?, status=?, respondent_uscc=?, respondent_name=?,"
                " complainant_phone_hash=?, last_sequence=?, updated_at=?, body=? WHERE id=?",
                (ix["national_registration_no"], ix["status"], ix["respondent_uscc"], ix["respondent_name"],
                 ix["complainant_phone_hash"], ticket.lifecycle.last_sequence, now, body, ticket.ticket_id),
            )
            return self._insert_deliveries(db, ticket.ticket_id, str(row[1]), outbox, now)

    async def search_tickets(self, query: TicketQuery) -> list[Ticket]:
        clauses: list[str] = []
        params: list[object] = []
        exact = {
            "adapter_id": query.adapter_id,
            "status": query.status,
            "national_registration_no": query.national_registration_no,
            "source_ticket_no": query.source_ticket_no,
            "respondent_uscc": query.respondent_uscc,
            "respondent_name": query.respondent_name,
            "complainant_phone_hash": (
                hash_phone(query.complainant_phone, self._phone_key) if query.complainant_phone else None
            ),
        }
        for column, value in exact.items():
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        if query.since is not None:
            clauses.append("created_at >= ?")
            params.append(to_ms(query.since))
        if query.until is not None:
            clauses.append("created_at < ?")
            params.append(to_ms(query.until))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        sql = f"SELECT body FROM tickets {where} ORDER BY created_at DESC, rowid DESC LIMIT ?"  # noqa: S608
        rows = await self._run(self._fetchall, sql, (*params, query.limit))
        return [Ticket.model_validate_json(str(row[0])) for row in rows]

    async def get_raw_payload(self, ticket_id: str) -> tuple[bytes, str] | None:
        row = await self._run(self._fetchone, "SELECT body, content_type FROM raw_payloads WHERE ticket_id = ?",
                              (ticket_id,))
        return (bytes(row[0]), str(row[1])) if row else None

    # -- quarantine -------------------------------------------------------------------------------
    async def quarantine(self, adapter_id: str, body: bytes, content_type: str,
                         errors: list[FieldError]) -> str:
        quarantine_id = str(ULID())
        errors_json = json.dumps([e.model_dump(mode="json") for e in errors], ensure_ascii=False)
        await self._run(self._quarantine_sync, quarantine_id, adapter_id, body, content_type, errors_json)
        return quarantine_id

    def _quarantine_sync(self, quarantine_id: str, adapter_id: str, body: bytes, content_type: str,
                         errors_json: str) -> None:
        with self._write(acknowledged=True) as db:
            db.execute(
                "INSERT INTO quarantine (id, adapter_id, received_at, content_type, body, errors)"
                " VALUES (?,?,?,?,?,?)",
                (quarantine_id, adapter_id, now_ms(), content_type, body, errors_json),
            )

    @staticmethod
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

    _Q_COLUMNS = "id, adapter_id, received_at, content_type, body, errors, resolved_ticket_id"

    async def get_quarantined(self, quarantine_id: str) -> QuarantinedPayload | None:
        row = await self._run(self._fetchone, f"SELECT {self._Q_COLUMNS} FROM quarantine WHERE id = ?",  # noqa: S608
                              (quarantine_id,))
        return self._quarantined(row) if row else None

    async def list_quarantined(self, adapter_id: str | None = None, limit: int = 100) -> list[QuarantinedPayload]:
        if adapter_id is None:
            rows = await self._run(
                self._fetchall,
                f"SELECT {self._Q_COLUMNS} FROM quarantine ORDER BY received_at DESC, rowid DESC LIMIT ?",  # noqa: S608
                (limit,),
            )
        else:
            rows = await self._run(
                self._fetchall,
                f"SELECT {self._Q_COLUMNS} FROM quarantine WHERE adapter_id = ?"  # noqa: S608
                " ORDER BY received_at DESC, rowid DESC LIMIT ?",
                (adapter_id, limit),
            )
        return [self._quarantined(row) for row in rows]

    async def resolve_quarantined(self, quarantine_id: str, ticket_id: str) -> None:
        await self._run(self._resolve_sync, quarantine_id, ticket_id)

    def _resolve_sync(self, quarantine_id: str, ticket_id: str) -> None:
        with self._write(acknowledged=True) as db:
            changed = db.execute("UPDATE quarantine SET resolved_ticket_id = ? WHERE id = ?",
                                 (ticket_id, quarantine_id)).rowcount
            if changed == 0:
                raise KeyError(f"no quarantined payload {quarantine_id}")

    # -- delivery lanes ---------------------------------------------------------------------------
    async def enqueue(self, ticket_id: str, idempotency_key: str, entries: list[OutboxEntry]) -> tuple[str, ...]:
        for entry in entries:
            check_destination(entry.destination)
        return await self._grouped(functools.partial(self._enqueue_in, ticket_id, idempotency_key, entries),
                                   acknowledged=True)

    def _enqueue_in(self, ticket_id: str, idempotency_key: str, entries: list[OutboxEntry],
                    db: sqlite3.Connection) -> tuple[str, ...]:
        return self._insert_deliveries(db, ticket_id, idempotency_key, entries, now_ms())

    async def claim(self, destination: str, worker_id: str, lease_seconds: float,
                    limit: int = 1) -> list[ClaimedDelivery]:
        return await self._in_place(functools.partial(self._claim_in, destination, worker_id, lease_seconds, limit))

    def _claim_in(self, destination: str, worker_id: str, lease_seconds: float, limit: int,
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
                " attempts, created_at, lease_token, lease_until, budget_attempts, budget_since",
                (token, lease_until, worker_id, destination, now, _PARKED),
            ).fetchone()
            if row is None:
                break
            claimed.append(ClaimedDelivery(
                delivery_id=row[0], ticket_id=row[1], destination=row[2], kind=DeliveryKind(row[3]),
                idempotency_key=row[4], body=bytes(row[5]), content_type=row[6],
                headers=json.loads(row[7]), attempts=row[8], created_at=from_ms(row[9]),
                lease_token=row[10], lease_until=from_ms(row[11]), budget_attempts=row[12],
                budget_since=None if row[13] is None else from_ms(row[13]),
            ))
        return claimed

    async def settle_delivered(self, claim: ClaimedDelivery, attempt: AttemptReceipt) -> None:
        await self._settle(claim, attempt, _DELIVERED, None)

    async def settle_retry(self, claim: ClaimedDelivery, attempt: AttemptReceipt, due_at: datetime) -> None:
        await self._settle(claim, attempt, _RETRYING, to_ms(due_at))

    async def settle_dead(self, claim: ClaimedDelivery, attempt: AttemptReceipt) -> None:
        await self._settle(claim, attempt, _DEAD, None)

    async def _settle(self, claim: ClaimedDelivery, attempt: AttemptReceipt, state: str, due_at: int | None) -> None:
        await self._in_place(functools.partial(self._settle_in, claim, attempt_to_record(claim, attempt), state,
                                               due_at))

    def _settle_in(self, claim: ClaimedDelivery, attempt: AttemptReceipt, state: str, due_at: int | None,
                   db: sqlite3.Connection) -> None:
        now = now_ms()
        row = db.execute(
            "UPDATE deliveries SET state = ?, attempts = attempts + 1, lease_token = NULL,"
            " lease_until = NULL, worker_id = NULL, return_state = NULL,"
            " last_error_class = ?, last_status_code = ?,"
            " due_at = COALESCE(?, due_at), claim_rank = 2 * priority + 1,"
            " delivered_at = CASE WHEN ? = 'delivered' THEN ? ELSE delivered_at END,"
            " dead_at = CASE WHEN ? = 'dead' THEN ? ELSE dead_at END"
            " WHERE id = ? AND state = 'in_flight' AND lease_token = ? RETURNING attempts",
            (state, attempt.error_class, attempt.status_code, due_at, state, now, state, now,
             claim.delivery_id, claim.lease_token),
        ).fetchone()
        if row is None:
            raise LeaseLost(f"delivery {claim.delivery_id}: the lease {claim.lease_token} is no longer held")
        db.execute(
            "INSERT OR REPLACE INTO attempts (delivery_id, number, started_at, duration_ms, status_code,"
            " error_class, outcome, response_body) VALUES (?,?,?,?,?,?,?,?)",
            (claim.delivery_id, row[0], to_ms(attempt.started_at), attempt.duration_ms, attempt.status_code,
             attempt.error_class, attempt.outcome.value, attempt.response_body),
        )

    async def release(self, claim: ClaimedDelivery) -> bool:
        return await self._in_place(functools.partial(self._release_in, claim))

    @staticmethod
    def _release_in(claim: ClaimedDelivery, db: sqlite3.Connection) -> bool:
        return bool(db.execute(
            f"UPDATE deliveries SET {_PUT_BACK} WHERE id = ? AND state = 'in_flight' AND lease_token = ?",  # noqa: S608
            (claim.delivery_id, claim.lease_token),
        ).rowcount)

    async def reap_expired_leases(self, now: datetime) -> int:
        return await self._run(self._reap_sync, to_ms(now))

    def _reap_sync(self, now: int) -> int:
        with self._write() as db:
            reaped = db.execute(f"UPDATE deliveries SET {_PUT_BACK} WHERE state = 'in_flight' AND lease_until <= ?",  # noqa: S608
                                (now,)).rowcount
            db.execute("DELETE FROM nonces WHERE expires_at <= ?", (now,))
            db.execute("DELETE FROM locks WHERE expires_at <= ?", (now,))
        return int(reaped)

    @staticmethod
    def _receipt(row: Row) -> DeliveryReceipt:
        (did, ticket_id, destination, kind, idem, state, attempts, created_at, due_at, delivered_at,
         error_class, status_code) = row
        waiting = state in (_PENDING, _RETRYING)
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

    async def get_delivery(self, delivery_id: str) -> DeliveryReceipt | None:
        row = await self._run(self._fetchone, f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE id = ?",  # noqa: S608
                              (delivery_id,))
        return self._receipt(row) if row else None

    @staticmethod
    def _filter_sql(flt: DeliveryFilter) -> tuple[str, list[object]]:
        clauses: list[str] = []
        params: list[object] = []
        if flt.state is not None:
            clauses.append("state = ?")
            params.append(flt.state.value)
        if flt.destination is not None:
            clauses.append("destination = ?")
            params.append(flt.destination)
        if flt.error_class is not None:
            clauses.append("last_error_class = ?")
            params.append(flt.error_class)
        if flt.since is not None:
            clauses.append("created_at >= ?")
            params.append(to_ms(flt.since))
        if flt.until is not None:
            clauses.append("created_at < ?")
            params.append(to_ms(flt.until))
        if flt.ticket_id is not None:
            clauses.append("ticket_id = ?")
            params.append(flt.ticket_id)
        return (f"WHERE {' AND '.join(clauses)}" if clauses else ""), params

    async def list_deliveries(self, flt: DeliveryFilter) -> list[DeliveryReceipt]:
        where, params = self._filter_sql(flt)
        rows = await self._run(
            self._fetchall,
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries {where} ORDER BY created_at, rowid LIMIT ?",  # noqa: S608
            (*params, flt.limit),
        )
        return [self._receipt(row) for row in rows]

    async def list_attempts(self, delivery_id: str) -> list[AttemptReceipt]:
        rows = await self._run(
            self._fetchall,
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

    async def replay(self, flt: DeliveryFilter | None = None, delivery_ids: list[str] | None = None,
                     dry_run: bool = False) -> list[str]:
        return await self._run(self._replay_sync, flt, delivery_ids, dry_run)

    def _replay_sync(self, flt: DeliveryFilter | None, delivery_ids: list[str] | None, dry_run: bool) -> list[str]:
        if delivery_ids is None and flt is None:
            raise ValueError("replay needs a filter or delivery ids; replaying every dead letter is a filter too")
        now = now_ms()
        with self._write(acknowledged=True) as db:
            if delivery_ids is not None:
                marks = ",".join("?" * len(delivery_ids))
                rows = db.execute(
                    f"SELECT id FROM deliveries WHERE state = 'dead' AND id IN ({marks})"  # noqa: S608
                    " ORDER BY created_at, rowid",
                    delivery_ids,
                ).fetchall() if delivery_ids else []
            else:
                assert flt is not None
                where, params = self._filter_sql(DeliveryFilter(
                    state=DeliveryState.DEAD, destination=flt.destination, error_class=flt.error_class,
                    since=flt.since, until=flt.until, ticket_id=flt.ticket_id, limit=flt.limit,
                ))
                rows = db.execute(
                    f"SELECT id FROM deliveries {where} ORDER BY created_at, rowid LIMIT ?",  # noqa: S608
                    (*params, flt.limit),
                ).fetchall()
            ids = [str(r[0]) for r in rows]
            if not dry_run:
                # A replayed delivery goes back as fresh work: an operator asked for it now. Its attempts so far
                # stay on record, and the retry policy's budget starts again from here.
                db.executemany(
                    "UPDATE deliveries SET state = 'pending', claim_rank = 2 * priority, due_at = ?, dead_at = NULL,"
                    " budget_attempts = attempts, budget_since = ? WHERE id = ? AND state = 'dead'",
                    [(now, now, i) for i in ids],
                )
        return ids

    async def compact_delivered(self, created_before: datetime, limit: int = 500) -> int:
        return await self._grouped(functools.partial(self._compact_in, to_ms(created_before), limit),
                                   acknowledged=False)

    @staticmethod
    def _compact_in(created_before: int, limit: int, db: sqlite3.Connection) -> int:
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

    async def lane_stats(self) -> dict[str, dict[str, float]]:
        return await self._run(self._lane_stats_sync)

    def _lane_stats_sync(self) -> dict[str, dict[str, float]]:
        now = now_ms()
        db = self._db
        stats: dict[str, dict[str, float]] = {}
        for destination, state, count in db.execute("SELECT destination, state, n FROM delivery_counts"):
            lane = stats.setdefault(destination, _empty_stats())
            lane[state] = float(count)
        for destination, lane in stats.items():
            # One index probe per waiting state (deliveries_state: state, destination, created_at).
            oldest = [row[0] for state in (_PENDING, _RETRYING, _IN_FLIGHT) if lane[state] > 0
                      for row in db.execute("SELECT MIN(created_at) FROM deliveries WHERE state = ?"
                                            " AND destination = ?", (state, destination)) if row[0] is not None]
            if oldest:
                lane["oldest_waiting_age_s"] = max(0.0, (now - min(oldest)) / 1000)
        return stats

    # -- operations: audit log, per-minute counts, intake totals ---------------------------------------
    async def append_audit(self, entry: AuditEntry) -> str:
        entry_id = str(ULID())
        detail = json.dumps(dict(entry.detail), ensure_ascii=False, default=str)
        await self._run(self._append_audit_sync, entry_id, entry, detail)
        return entry_id

    def _append_audit_sync(self, entry_id: str, entry: AuditEntry, detail: str) -> None:
        with self._write(acknowledged=True) as db:
            db.execute(
                "INSERT INTO audit_log (id, at, actor, role, action, outcome, ticket_ids, detail)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (entry_id, to_ms(entry.at), entry.actor, entry.role, entry.action, entry.outcome,
                 json.dumps(list(entry.ticket_ids)), detail),
            )
            db.executemany("INSERT OR IGNORE INTO audit_tickets (ticket_id, audit_id) VALUES (?,?)",
                           [(tid, entry_id) for tid in entry.ticket_ids])

    async def list_audit(self, query: AuditQuery) -> list[AuditEntry]:
        clauses: list[str] = []
        params: list[object] = []
        if query.actor is not None:
            clauses.append("actor = ?")
            params.append(query.actor)
        if query.action is not None:
            clauses.append("action = ?")
            params.append(query.action)
        if query.ticket_id is not None:
            clauses.append("id IN (SELECT audit_id FROM audit_tickets WHERE ticket_id = ?)")
            params.append(query.ticket_id)
        if query.since is not None:
            clauses.append("at >= ?")
            params.append(to_ms(query.since))
        if query.until is not None:
            clauses.append("at < ?")
            params.append(to_ms(query.until))
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        rows = await self._run(
            self._fetchall,
            "SELECT id, at, actor, role, action, outcome, ticket_ids, detail FROM audit_log"  # noqa: S608
            f" {where} ORDER BY at DESC, rowid DESC LIMIT ?",
            (*params, query.limit),
        )
        return [
            AuditEntry(entry_id=str(r[0]), at=from_ms(int(r[1])), actor=str(r[2]), role=str(r[3]),
                       action=str(r[4]), outcome=str(r[5]), ticket_ids=tuple(json.loads(str(r[6]))),
                       detail=json.loads(str(r[7])))
            for r in rows
        ]

    async def add_counts(self, counts: Mapping[datetime, Mapping[str, int]]) -> None:
        rows = [(minute_start_ms(minute), name, int(n)) for minute, by_name in counts.items()
                for name, n in by_name.items() if n]
        if rows:
            await self._run(self._add_counts_sync, rows)

    def _add_counts_sync(self, rows: list[tuple[int, str, int]]) -> None:
        with self._write() as db:
            db.executemany(
                "INSERT INTO minute_counts (minute, name, count) VALUES (?,?,?)"
                " ON CONFLICT(minute, name) DO UPDATE SET count = count + excluded.count",
                rows,
            )
            db.execute("DELETE FROM minute_counts WHERE minute < ?", (now_ms() - COUNTS_RETENTION_S * 1000,))

    async def read_counts(self, since: datetime, until: datetime | None = None) -> dict[datetime, dict[str, int]]:
        high = to_ms(until) if until is not None else now_ms() + 60_000
        rows = await self._run(
            self._fetchall,
            "SELECT minute, name, count FROM minute_counts WHERE minute >= ? AND minute < ? ORDER BY minute",
            (minute_start_ms(since), high),
        )
        found: dict[datetime, dict[str, int]] = {}
        for minute, name, count in rows:
            found.setdefault(from_ms(int(minute)), {})[str(name)] = int(count)
        return found

    async def intake_stats(self, adapter_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        return await self._run(self._intake_stats_sync, list(adapter_ids))

    def _intake_stats_sync(self, adapter_ids: list[str]) -> dict[str, dict[str, int]]:
        stats = {a: {"tickets": 0, "quarantined": 0, "quarantine_open": 0} for a in adapter_ids}
        db = self._db
        for adapter_id, count in db.execute("SELECT adapter_id, n FROM ticket_counts"):
            if adapter_id in stats:
                stats[adapter_id]["tickets"] = int(count)
        for adapter_id, total, still_open in db.execute(
            "SELECT adapter_id, COUNT(*), SUM(resolved_ticket_id IS NULL) FROM quarantine GROUP BY adapter_id"
        ):
            if adapter_id in stats:
                stats[adapter_id]["quarantined"] = int(total)
                stats[adapter_id]["quarantine_open"] = int(still_open or 0)
        return stats

    # -- pollers, nonces ---------------------------------------------------------------------------
    async def get_cursor(self, adapter_id: str) -> str | None:
        row = await self._run(self._fetchone, "SELECT cursor FROM cursors WHERE adapter_id = ?", (adapter_id,))
        return str(row[0]) if row else None

    async def set_cursor(self, adapter_id: str, cursor: str) -> None:
        await self._run(self._set_cursor_sync, adapter_id, cursor)

    def _set_cursor_sync(self, adapter_id: str, cursor: str) -> None:
        with self._write() as db:
            db.execute(
                "INSERT INTO cursors (adapter_id, cursor, updated_at) VALUES (?,?,?)"
                " ON CONFLICT(adapter_id) DO UPDATE SET cursor = excluded.cursor, updated_at = excluded.updated_at",
                (adapter_id, cursor, now_ms()),
            )

    async def try_lock(self, name: str, owner: str, ttl_seconds: float) -> bool:
        return await self._run(self._try_lock_sync, name, owner, ttl_seconds)

    def _try_lock_sync(self, name: str, owner: str, ttl_seconds: float) -> bool:
        now = now_ms()
        with self._write() as db:
            row = db.execute(
                "INSERT INTO locks (name, owner, expires_at) VALUES (?,?,?)"
                " ON CONFLICT(name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at"
                " WHERE locks.owner = excluded.owner OR locks.expires_at <= ? RETURNING owner",
                (name, owner, now + int(ttl_seconds * 1000), now),
            ).fetchone()
        return row is not None

    async def release_lock(self, name: str, owner: str) -> None:
        await self._run(self._release_lock_sync, name, owner)

    def _release_lock_sync(self, name: str, owner: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM locks WHERE name = ? AND owner = ?", (name, owner))

    async def remember_nonce(self, scope: str, nonce: str, ttl_seconds: float) -> bool:
        # A short write at synchronous=NORMAL, as a claim is: in place, on the loop writer's connection.
        return await self._in_place(functools.partial(self._nonce_in, scope, nonce, ttl_seconds))

    @staticmethod
    def _nonce_in(scope: str, nonce: str, ttl_seconds: float, db: sqlite3.Connection) -> bool:
        now = now_ms()
        row = db.execute(
            "INSERT INTO nonces (scope, nonce, expires_at) VALUES (?,?,?)"
            " ON CONFLICT(scope, nonce) DO UPDATE SET expires_at = excluded.expires_at"
            " WHERE nonces.expires_at <= ? RETURNING 1",
            (scope, nonce, now + int(ttl_seconds * 1000), now),
        ).fetchone()
        return row is not None


def _empty_stats() -> dict[str, float]:
    stats = {state.value: 0.0 for state in DeliveryState}
    stats["oldest_waiting_age_s"] = 0.0
    return stats

