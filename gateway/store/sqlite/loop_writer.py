"""The event loop's own SQLite connection: a lane's claims, settles and releases, SOAP nonces and keyed reads (a
partner's number, a link look-up outside intake), in place."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


class WriterBusy(Exception):
    """The write was not made: another connection holds the write lock, or this is not the writer's thread."""


class LoopWriter:
    """Writes in place on the calling thread's connection; each write is a transaction of its own.

    Short writes at synchronous=NORMAL, spared the hop to the store's thread (docs/sqlite-store.md): they never
    wait for the write lock (WriterBusy at once, and the caller hands the write to the store's thread), never
    checkpoint (`checkpoint_due` every `checkpoint_every` commits asks the store's thread to), and belong to
    the first thread that writes (any other gets WriterBusy).
    """

    def __init__(self, path: Path, checkpoint_due: Callable[[], None], *, checkpoint_every: int = 500) -> None:
        self._path = path
        self._checkpoint_due = checkpoint_due
        self._checkpoint_every = checkpoint_every
        self._conn: sqlite3.Connection | None = None
        self._owner: int | None = None
        self._closed = False
        self._since_checkpoint = 0

    def write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work` inside one write transaction, committed before this returns; WriterBusy if it cannot start
        without waiting. An exception of `work` rolls the transaction back and is raised."""
        conn = self._connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as err:
            if err.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise WriterBusy(str(err)) from err
            raise
        try:
            result = work(conn)
            conn.execute("COMMIT")
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
            raise
        self._since_checkpoint += 1
        if self._since_checkpoint >= self._checkpoint_every:
            self._since_checkpoint = 0
            self._checkpoint_due()
        return result

    def read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """`work`'s reads on this connection (each statement its own snapshot); WriterBusy on another thread."""
        return work(self._connection())

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise WriterBusy("the loop writer is closed")
        if self._conn is None:
            self._owner = threading.get_ident()
            conn = sqlite3.connect(self._path, isolation_level=None, timeout=0, check_same_thread=False)
            conn.execute("PRAGMA busy_timeout=0")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._conn = conn
        elif threading.get_ident() != self._owner:
            raise WriterBusy("the loop writer belongs to another thread")
        return self._conn

    def close(self) -> None:
        self._closed = True
        if self._conn is not None:
            self._conn.close()
            self._conn = None
