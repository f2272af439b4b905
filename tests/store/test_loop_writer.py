"""A lane's claims and settles on SQLite run in place on the event loop's own connection, never wait for the
write lock there, and leave checkpoints to the store's thread (gateway/store/sqlite/loop_writer.py)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Coroutine, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pytest

from gateway.store import LinkQuery
from gateway.store.sqlite import LoopWriter, SqliteStore, WriterBusy
from tests.store.conftest import PHONE_KEY
from tests.store.store_support import attempt, make_ticket, national

T = TypeVar("T")


def finished_without_suspending(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine one step: it must finish in that step (no hop to another thread, no wait)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    coro.close()
    raise AssertionError("the coroutine suspended: it waited for something")


def wal_table(path: Path) -> sqlite3.Connection:
    """A WAL-mode file with one table `t (x)`, and a connection to it."""
    setup = sqlite3.connect(path, isolation_level=None)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (x INTEGER)")
    return setup


async def queued(store: SqliteStore, n: int) -> None:
    for i in range(n):
        await store.intake(make_ticket(f"LW-{i:05d}"), b"{}", "application/json", [national()])


async def test_claim_and_settle_finish_in_place_when_the_write_lock_is_free(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "inplace.db", PHONE_KEY)
    await store.open()
    try:
        await queued(store, 3)
        claims = finished_without_suspending(store.claim("national", "w1", 30.0, limit=3))
        assert len(claims) == 3
        for claim in claims:
            finished_without_suspending(store.settle_delivered(claim, attempt(claim)))
        receipts = [await store.get_delivery(c.delivery_id) for c in claims]
        assert [r.state.value for r in receipts if r is not None] == ["delivered"] * 3
    finally:
        await store.close()


async def test_the_duplicate_look_up_sees_what_intake_committed(tmp_path: Path) -> None:
    """On the store thread, where the link log's memory is kept (it used to run in place on the loop's connection,
    an index read of the file)."""
    store = SqliteStore(tmp_path / "lookup.db", PHONE_KEY)
    await store.open()
    try:
        ticket = make_ticket("LW-1", phone="+8613985012345")
        mark = "phone:+8613985012345|uscc:91520100MA6DK2X98L"
        await store.intake(ticket, b"{}", "application/json", [], link_marks=[mark])
        at = ticket.source.source_received_at
        query = LinkQuery((mark,), at - timedelta(days=1), at + timedelta(days=1))
        found = await store.find_link_candidates(query)
        assert [c.ticket_id for c in found] == [ticket.ticket_id]
    finally:
        await store.close()


async def test_while_another_connection_holds_the_write_lock_the_loop_keeps_running(tmp_path: Path) -> None:
    """The claim goes to the store's thread, which waits for the lock; the event loop does not."""
    path = tmp_path / "locked.db"
    store = SqliteStore(path, PHONE_KEY)
    await store.open()
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        await queued(store, 1)
        other.execute("BEGIN IMMEDIATE")
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticking = asyncio.create_task(ticker())
        claim_task = asyncio.create_task(store.claim("national", "w1", 30.0))
        await asyncio.sleep(0.3)
        assert not claim_task.done(), "the claim cannot have been made while the lock was held"
        assert ticks >= 10, f"the event loop was held up: {ticks} ticks in 0.3 s"
        other.execute("COMMIT")
        (claim,) = await asyncio.wait_for(claim_task, 5)
        ticking.cancel()
        await store.settle_delivered(claim, attempt(claim))
        receipt = await store.get_delivery(claim.delivery_id)
        assert receipt is not None and receipt.state.value == "delivered"
    finally:
        other.close()
        await store.close()


async def test_the_loop_writers_commits_are_checkpointed_by_the_store_thread(tmp_path: Path) -> None:
    """The loop's connection never checkpoints; the store's thread does, every `checkpoint_every` commits, so
    the write-ahead log is started afresh. Without those checkpoints it grows with every delivery."""
    frames = {}
    for every in (20, 10**9):
        path = tmp_path / f"wal-{every}.db"
        store = SqliteStore(path, PHONE_KEY, checkpoint_every=every)
        await store.open()
        try:
            await queued(store, 400)
            await store.health()  # intake's own commits have checkpointed: start from a small log
            for _ in range(400):
                claims = await store.claim("national", "w1", 30.0)
                await store.settle_delivered(claims[0], attempt(claims[0]))
                await asyncio.sleep(0.001)  # the loop waits for something, as a lane does: the store thread runs
            await store.health()
            with sqlite3.connect(path) as probe:  # (busy, frames in the log, frames checkpointed)
                frames[every] = probe.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()[1]
        finally:
            await store.close()
    assert frames[20] * 10 < frames[10**9], frames


@pytest.fixture
def table(tmp_path: Path) -> Iterator[tuple[sqlite3.Connection, LoopWriter]]:
    """A connection to a WAL file with a table `t`, and a loop writer on the same file."""
    path = tmp_path / "t.db"
    setup = wal_table(path)
    writer = LoopWriter(path, lambda: None)
    yield setup, writer
    writer.close()
    setup.close()


def rows_after_writing_2(setup: sqlite3.Connection, writer: LoopWriter) -> list[tuple[int]]:
    writer.write(lambda db: db.execute("INSERT INTO t VALUES (2)"))
    return list(setup.execute("SELECT x FROM t").fetchall())


def test_the_writer_does_not_wait_for_a_lock_held_elsewhere(table: tuple[sqlite3.Connection, LoopWriter]) -> None:
    setup, writer = table
    # It never waits: its connection has no busy wait at all (sqlite3's default would wait 5 s, then fail too).
    assert writer.write(lambda db: db.execute("PRAGMA busy_timeout").fetchone()) == (0,)
    setup.execute("BEGIN IMMEDIATE")
    with pytest.raises(WriterBusy):
        writer.write(lambda db: db.execute("INSERT INTO t VALUES (1)"))
    setup.execute("COMMIT")
    assert rows_after_writing_2(setup, writer) == [(2,)]


def test_a_failing_write_is_rolled_back_and_raised(table: tuple[sqlite3.Connection, LoopWriter]) -> None:
    setup, writer = table

    def insert_then_fail(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO t VALUES (1)")
        raise LookupError("the lease is lost")

    with pytest.raises(LookupError, match="lease"):
        writer.write(insert_then_fail)
    assert rows_after_writing_2(setup, writer) == [(2,)]  # 1 was undone, and no transaction was left open


def test_checkpoints_are_asked_for_every_n_commits_and_other_threads_are_turned_away(tmp_path: Path) -> None:
    path = tmp_path / "every.db"
    setup = wal_table(path)
    setup.close()
    asked: list[str] = []
    writer = LoopWriter(path, lambda: asked.append("checkpoint"), checkpoint_every=3)
    try:
        after_each = []
        for i in range(7):
            writer.write(lambda db, i=i: db.execute("INSERT INTO t VALUES (?)", (i,)))
            after_each.append(len(asked))
        assert after_each == [0, 0, 1, 1, 1, 2, 2]
        refused: list[BaseException] = []

        def from_another_thread() -> None:
            try:
                writer.write(lambda db: db.execute("INSERT INTO t VALUES (99)"))
            except BaseException as err:  # handed to the test thread
                refused.append(err)

        thread = threading.Thread(target=from_another_thread)
        thread.start()
        thread.join()
        assert [type(e) for e in refused] == [WriterBusy]
    finally:
        writer.close()
