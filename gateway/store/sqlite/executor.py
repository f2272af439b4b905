"""Where the SQLite store's statements run: its own thread and connection, group commit and checkpoints."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from gateway.store.sqlite.loop_writer import LoopWriter, WriterBusy

T = TypeVar("T")
Row = tuple[Any, ...]
Sync = Literal["OFF", "NORMAL", "FULL", "EXTRA"]
log = logging.getLogger(__name__)

# Durability. In WAL mode synchronous=NORMAL survives a crash of the process but not of the machine
# (power loss may roll back the last commits); FULL syncs the WAL at every commit. A partner is told
# "stored" only after intake commits, and an enqueued callback must not vanish, so those writes (and
# the other ones somebody was promised) run at `acknowledged_sync`, FULL by default. Claims and
# settlements run at NORMAL: losing one to a power cut means a delivery is sent again, which
# at-least-once delivery with an idempotency key already allows. bench/store measures both.
ACKNOWLEDGED_SYNC: Sync = "FULL"


def answer(done: asyncio.Future[Any], result: object) -> None:
    """Complete `done` with a result or an exception, unless its waiter gave up (cancelled) meanwhile."""
    if done.done():
        return
    if isinstance(result, BaseException):
        done.set_exception(result)
    else:
        done.set_result(result)


class StoreThread:
    """One thread running submitted jobs in order until shut down. A job answers its own caller; one that
    raises is logged and the thread goes on."""

    # A plain queue and one thread: a one-worker ThreadPoolExecutor paid a timed semaphore acquire per submit.
    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        """Queue a job; RuntimeError once shut down (the job will not run)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the store thread is shut down")
            self._jobs.put(job)

    async def run(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the thread; its result or exception, once it is done."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()

        def job() -> None:
            try:
                result: object = fn()
            except BaseException as err:  # handed to the waiter, never raised on this thread
                result = err
            with contextlib.suppress(RuntimeError):  # the waiter's loop is closed: nobody waits
                loop.call_soon_threadsafe(answer, done, result)

        self.submit(job)
        return await done

    def shutdown(self) -> None:
        """Run what is queued, then end the thread; returns when it has ended."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._jobs.put(None)
        self._thread.join()

    def _serve(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                job()
            except Exception:  # a job's bug must not end the thread: every later caller would wait forever
                log.exception("a store thread job failed")


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


def _answer_all(answers: list[tuple[asyncio.Future[Any], object]]) -> None:
    # A caller that gave up (cancelled) is not answered; what was written stays, as after any commit.
    for done, result in answers:
        answer(done, result)


class Executor:
    """Runs the store's work on one connection owned by the store's thread, and short unacknowledged writes in
    place on the event loop's own connection (the loop writer)."""

    def __init__(self, path: Path, *, acknowledged_sync: Sync, busy_timeout_ms: int, checkpoint_every: int) -> None:
        self.path = path
        self.ack_sync = acknowledged_sync
        self._busy_timeout_ms = busy_timeout_ms
        self._thread: StoreThread | None = None
        self.conn: sqlite3.Connection | None = None
        # Group commit: writes that arrive while the store thread is busy share the next transaction (and its
        # fsync), keyed by whether they are acknowledged (synchronous=FULL) or not (NORMAL).
        self._groups = {True: _WriteGroup(), False: _WriteGroup()}
        self._groups_lock = threading.Lock()
        self._loop_writer: LoopWriter | None = None  # short NORMAL writes, in place on the event loop's thread
        self._checkpoint_every = checkpoint_every  # the loop writer's commits between checkpoints
        self._checkpoint_queued = False

    # -- running work -----------------------------------------------------------------------------
    async def run(self, fn: Callable[..., T], *args: object) -> T:
        """`fn(*args)` on the store's thread: the event loop never blocks on disk, and the one connection is
        only ever used from the thread that made it."""
        if self._thread is None:
            raise RuntimeError("the SQLite store is not open; await store.open() first")
        return await self._thread.run(functools.partial(fn, *args))

    async def grouped(self, write: Callable[[sqlite3.Connection], T], *, acknowledged: bool) -> T:
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

    def write(self, write: Callable[[sqlite3.Connection], T], *,
              acknowledged: bool = False) -> Coroutine[Any, Any, T]:
        """`write` in a transaction of its own on the store's thread: await it for its result once committed.
        (Not a coroutine itself: no extra frame between the caller and `run`.)"""
        return self.run(self._transact, write, acknowledged)

    async def in_place(self, write: Callable[[sqlite3.Connection], T]) -> T:
        """A short unacknowledged write (a claim, a settle, a nonce) on the loop writer's connection, without a
        hop to the store thread; grouped on that thread instead while another connection holds the write lock."""
        if self._loop_writer is not None:
            with contextlib.suppress(WriterBusy):
                return self._loop_writer.write(write)
        return await self.grouped(write, acknowledged=False)

    async def read_in_place(self, read: Callable[[sqlite3.Connection], T]) -> T:
        """A short indexed read (intake's look-up of a partner's number) on the loop writer's connection: no hop to
        the store thread, whose queue and wake-up were most of the look-up's time on a loaded machine
        (docs/benchmarks.md); on the store thread when the loop writer is not this thread's."""
        if self._loop_writer is not None:
            with contextlib.suppress(WriterBusy):
                return self._loop_writer.read(read)
        return await self.run(lambda: read(self.db))

    @property
    def db(self) -> sqlite3.Connection:
        """The store thread's connection; only on that thread."""
        if self.conn is None:
            raise RuntimeError("the SQLite store is not open")
        return self.conn

    @contextmanager
    def transaction(self, *, acknowledged: bool = False) -> Iterator[sqlite3.Connection]:
        """One write transaction on the store thread; BEGIN IMMEDIATE takes the write lock up front so it never
        deadlocks."""
        db = self.db
        if acknowledged and self.ack_sync != "NORMAL":
            db.execute(f"PRAGMA synchronous={self.ack_sync}")
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        finally:
            if acknowledged and self.ack_sync != "NORMAL":
                db.execute("PRAGMA synchronous=NORMAL")

    def _transact(self, write: Callable[[sqlite3.Connection], T], acknowledged: bool) -> T:
        with self.transaction(acknowledged=acknowledged) as db:
            return write(db)

    def fetchone(self, sql: str, params: tuple[object, ...]) -> Row | None:
        row: Row | None = self.db.execute(sql, params).fetchone()
        return row

    def fetchall(self, sql: str, params: tuple[object, ...]) -> list[Row]:
        return list(self.db.execute(sql, params).fetchall())

    # -- group commit and checkpoints (on the store thread) ----------------------------------------------
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
            with self.transaction(acknowledged=acknowledged) as db:
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
        if self.conn is not None:
            self.conn.execute("PRAGMA wal_checkpoint(RESTART)").fetchone()

    # -- life cycle -------------------------------------------------------------------------------
    async def open(self, prepare: Callable[[sqlite3.Connection], None]) -> None:
        """Start the thread and open the file in WAL mode; `prepare` (migrations, checks) runs on it first."""
        if self._thread is not None:
            return
        self._groups = {True: _WriteGroup(), False: _WriteGroup()}  # nothing left over from before a close
        self._thread = StoreThread(f"sqlite-store-{self.path.name}")
        try:
            await self.run(self._open_sync, prepare)
        except BaseException:
            self._thread.shutdown()
            self._thread = None
            raise
        self._loop_writer = LoopWriter(self.path, self._checkpoint_soon, checkpoint_every=self._checkpoint_every)

    def _open_sync(self, prepare: Callable[[sqlite3.Connection], None]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.path, isolation_level=None, timeout=self._busy_timeout_ms / 1000)
        conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            conn.close()
            raise RuntimeError(f"{self.path}: SQLite refused WAL mode (got {mode}); is it on a network file system?")
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        self.conn = conn
        try:
            prepare(conn)
        except BaseException:
            conn.close()
            self.conn = None
            raise

    async def close(self) -> None:
        if self._thread is None:
            return
        if self._loop_writer is not None:
            self._loop_writer.close()
            self._loop_writer = None
        try:
            await self.run(self._close_sync)
        finally:
            self._thread.shutdown()
            self._thread = None

    def _close_sync(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def health(self) -> dict[str, object]:
        """The file's settings as the store thread's connection sees them (on that thread)."""
        db = self.db
        sync_names = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}
        writable, warnings = True, []
        try:  # the write lock within the busy timeout: what an intake needs (another process may hold it)
            db.execute("BEGIN IMMEDIATE")
            db.execute("ROLLBACK")
        except sqlite3.Error as err:
            writable, warnings = False, [f"SQLite refuses writes: {type(err).__name__}: {err}"]
        return {
            "store": "sqlite",
            "reachable": True,
            "writable": writable,
            "persistent": True,
            "path": str(self.path),
            "journal_mode": db.execute("PRAGMA journal_mode").fetchone()[0],
            "synchronous": sync_names.get(db.execute("PRAGMA synchronous").fetchone()[0], "?"),
            "acknowledged_synchronous": self.ack_sync,
            "schema_version": db.execute("PRAGMA user_version").fetchone()[0],
            "warnings": warnings,
        }
