"""The SQLite store's link log: link keys appended in the file and found through the process's memory. What the
conformance suite cannot see: the memory read back from the file by a new process, rows another process appends,
rows out of the horizon evicted, and an entry whose transaction rolled back."""

from __future__ import annotations

import sqlite3
from datetime import timedelta
from pathlib import Path

import pytest

from contracts.ticket import Ticket
from gateway.store import LinkQuery
from gateway.store.sqlite import SqliteStore, link_log
from gateway.store.sqlite.link_log import LinkLog
from gateway.store.sqlite.schema import migrate
from tests.delivery.delivery_support import eventually
from tests.store.conftest import PHONE_KEY
from tests.store.store_support import make_ticket

RAW = b"{}"
MARK = "phone:+8613985012345|uscc:91520100MA6DK2X98L"
OTHER_MARK = "id:522601200109098873|uscc:91520100MA6DK2X98L"


def later(no: str, days: float) -> Ticket:
    ticket = make_ticket(no)
    source = ticket.source.model_copy(update={"source_received_at": ticket.source.source_received_at
                                              + timedelta(days=days)})
    return ticket.model_copy(update={"source": source})


def query(*marks: str, days: float = 30) -> LinkQuery:
    at = make_ticket().source.source_received_at
    return LinkQuery(marks, at - timedelta(days=days), at + timedelta(days=days))


def log_rows(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as db:
        return db.execute("SELECT ticket_id, link_keys FROM link_log ORDER BY seq").fetchall()


async def test_a_new_process_finds_the_tickets_an_earlier_one_stored(tmp_path: Path) -> None:
    path = tmp_path / "restart.db"
    first = SqliteStore(path, PHONE_KEY)
    await first.open()
    stored = make_ticket("LL-1")
    await first.intake(stored, RAW, "application/json", [], link_marks=[MARK, OTHER_MARK])
    await first.close()

    second = SqliteStore(path, PHONE_KEY)
    await second.open()
    try:
        assert [c.ticket_id for c in await second.find_link_candidates(query(OTHER_MARK))] == [stored.ticket_id]
        assert await second.find_link_candidates(query("phone:+8613900000000|uscc:91520100MA6DK2X98L")) == []
    finally:
        await second.close()
    assert [ticket_id for ticket_id, _ in log_rows(path)] == [stored.ticket_id]  # one row a ticket, two keys in it
    assert len(log_rows(path)[0][1].split()) == 2


async def test_a_ticket_another_process_stores_is_found_by_the_running_one(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(link_log, "CATCH_UP_EVERY_S", 0.0)  # each look-up looks at once (in service: every 0.1 s)
    path = tmp_path / "two.db"
    gateway, cli = SqliteStore(path, PHONE_KEY), SqliteStore(path, PHONE_KEY)
    await gateway.open()
    await cli.open()
    try:
        before = make_ticket("LL-1")
        await gateway.intake(before, RAW, "application/json", [], link_marks=[MARK])
        assert [c.ticket_id for c in await gateway.find_link_candidates(query(MARK))] == [before.ticket_id]
        remapped = later("LL-2", 1)  # as the ops CLI's re-map stores it, beside the running gateway
        await cli.intake(remapped, RAW, "application/json", [], link_marks=[MARK])

        found = await gateway.find_link_candidates(query(MARK))
        assert [c.ticket_id for c in found] == [remapped.ticket_id, before.ticket_id]  # newest received first
        # And the other way round: the CLI's memory was read before the gateway's ticket after it.
        third = later("LL-3", 2)
        await gateway.intake(third, RAW, "application/json", [], link_marks=[MARK])
        assert [c.ticket_id for c in await cli.find_link_candidates(query(MARK))] == [
            third.ticket_id, remapped.ticket_id, before.ticket_id]
    finally:
        await cli.close()
        await gateway.close()


async def test_tickets_received_before_the_horizon_leave_the_memory_and_the_file(tmp_path: Path) -> None:
    """A window of 1 day keeps 2 days, counted back from the newest ticket received (the fixtures are of 2024)."""
    path = tmp_path / "horizon.db"
    store = SqliteStore(path, PHONE_KEY, link_window_days=1)
    await store.open()
    old, kept, newest = later("LL-OLD", -3), later("LL-KEPT", -1.5), make_ticket("LL-NEW")
    for ticket in (old, kept, newest):
        await store.intake(ticket, RAW, "application/json", [], link_marks=[MARK])
    await store.close()
    assert len(log_rows(path)) == 3  # nothing evicted yet: fewer appends than EVICT_EVERY

    store = SqliteStore(path, PHONE_KEY, link_window_days=1)
    await store.open()
    try:  # the first read of the file evicts
        found = await store.find_link_candidates(query(MARK, days=10))
        assert [c.ticket_id for c in found] == [newest.ticket_id, kept.ticket_id]
    finally:
        await store.close()
    assert [ticket_id for ticket_id, _ in log_rows(path)] == [kept.ticket_id, newest.ticket_id]


async def test_a_running_store_evicts_as_it_appends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(link_log, "EVICT_EVERY", 2)
    path = tmp_path / "running.db"
    store = SqliteStore(path, PHONE_KEY, link_window_days=1)
    await store.open()
    try:
        old, newest = later("LL-OLD", -3), make_ticket("LL-NEW")
        await store.intake(old, RAW, "application/json", [], link_marks=[MARK])
        assert [c.ticket_id for c in await store.find_link_candidates(query(MARK, days=10))] == [old.ticket_id]
        await store.intake(newest, RAW, "application/json", [], link_marks=[MARK])  # the second append evicts

        assert [c.ticket_id for c in await store.find_link_candidates(query(MARK, days=10))] == [newest.ticket_id]
    finally:
        await store.close()
    assert [ticket_id for ticket_id, _ in log_rows(path)] == [newest.ticket_id]


async def test_in_service_another_process_s_row_is_found_within_the_catch_up_interval(tmp_path: Path) -> None:
    path = tmp_path / "soon.db"
    gateway, cli = SqliteStore(path, PHONE_KEY), SqliteStore(path, PHONE_KEY)
    await gateway.open()
    await cli.open()
    try:
        assert await gateway.find_link_candidates(query(MARK)) == []  # the memory read, the interval started
        remapped = make_ticket("LL-1")
        await cli.intake(remapped, RAW, "application/json", [], link_marks=[MARK])

        async def found() -> bool:
            return [c.ticket_id for c in await gateway.find_link_candidates(query(MARK))] == [remapped.ticket_id]

        await eventually(found)  # polled: found once the interval is over
    finally:
        await cli.close()
        await gateway.close()


def in_transaction(db: sqlite3.Connection, links: LinkLog, keys: list[int], received: int, ticket_id: str) -> None:
    db.execute("BEGIN IMMEDIATE")
    links.append(db, keys, received, ticket_id)
    db.execute("INSERT INTO tickets (id, idempotency_key, adapter_id, source_system, source_ticket_no, status,"
               " last_sequence, created_at, updated_at, body) VALUES (?, ?, 'a', 's', ?, 'received', 0, 0, 0, ?)",
               (ticket_id, ticket_id, ticket_id, f'{{"id": "{ticket_id}"}}'))
    db.execute("COMMIT")


def test_rows_appended_around_another_process_s_are_each_held_once(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "between.db"
    ours, theirs = sqlite3.connect(path, isolation_level=None), sqlite3.connect(path, isolation_level=None)
    migrate(ours, path)
    mine, other = LinkLog(timedelta(days=60)), LinkLog(timedelta(days=60))
    monkeypatch.setattr(link_log, "CATCH_UP_EVERY_S", 3600.0)  # no catch-up between the appends
    in_transaction(ours, mine, [7], 1000, "T1")  # seq 1, the table read first
    in_transaction(theirs, other, [7], 2000, "T2")  # seq 2, another process's
    in_transaction(ours, mine, [7, 8], 3000, "T3")  # seq 3: beyond a row not read yet
    assert mine.find(ours, [7], 0, 10_000, 10) == ['{"id": "T3"}', '{"id": "T1"}']  # seq 2 not read yet

    monkeypatch.setattr(link_log, "CATCH_UP_EVERY_S", 0.0)
    mine._next_look = 0.0  # the interval over
    assert mine.find(ours, [7], 0, 10_000, 10) == ['{"id": "T3"}', '{"id": "T2"}', '{"id": "T1"}']
    assert mine._by_key[7] == [(1000, "T1"), (2000, "T2"), (3000, "T3")]  # T3 once: its row was skipped
    assert mine._mine == set()
    in_transaction(ours, mine, [7], 4000, "T4")  # seq 4 follows what is held: nothing to skip later
    assert mine._mine == set()
    ours.close()
    theirs.close()


def test_an_entry_whose_transaction_rolled_back_finds_nothing(tmp_path: Path) -> None:
    path = tmp_path / "rollback.db"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db, path)
    links = LinkLog(timedelta(days=60))
    ticket = make_ticket("LL-1")
    received = int(ticket.source.source_received_at.timestamp() * 1000)
    db.execute("BEGIN IMMEDIATE")
    links.append(db, [42, 43], received, ticket.ticket_id)
    assert links.find(db, [42], received - 1, received + 1, 5) == []  # the key is held, the ticket is not stored
    db.execute("ROLLBACK")

    assert links.find(db, [43], received - 1, received + 1, 5) == []
    assert db.execute("SELECT count(*) FROM link_log").fetchone() == (0,)
    db.close()
