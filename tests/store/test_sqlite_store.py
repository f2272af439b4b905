"""What only the SQLite store promises: WAL, durable intake, migrations, races between processes."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from contracts.delivery import AttemptOutcome
from contracts.ticket import Deadline, TicketLink
from gateway.config import GatewaySettings
from gateway.store import SourceNumber, open_store
from gateway.store.base import LinkCandidate, LinkQuery, Relinked, TicketQuery
from gateway.store.phone_hash import PhoneKeyMismatch, hash_phone
from gateway.store.redis import RedisStore
from gateway.store.sqlite import MIGRATIONS, SqliteStore
from tests.hig_command import Completed, run_hig
from tests.store.conftest import PHONE_KEY
from tests.store.store_support import attempt, make_ticket, national

REPO = Path(__file__).resolve().parents[2]
RAW = b'{"hotlineNo":"GZ-1"}'

_PUSHER = """
import asyncio, json, sys
from gateway.store.sqlite import SqliteStore
from tests.store.store_support import attempt, make_ticket, national

async def main() -> None:
    store = SqliteStore(sys.argv[1], b"test-phone-hash-key")
    await store.open()
    results = await asyncio.gather(*(store.intake(make_ticket(), b"{}", "application/json", [national()])
                                     for _ in range(10)))
    await store.close()
    print(json.dumps([[r.ticket_id, r.created] for r in results]))

asyncio.run(main())
"""


async def test_the_file_is_in_wal_mode_and_intake_is_synced_in_full(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "gateway.db", PHONE_KEY)
    await store.open()
    try:
        health = await store.health()
        assert (health["journal_mode"], health["synchronous"], health["acknowledged_synchronous"]) == (
            "wal", "NORMAL", "FULL")
        assert health["persistent"] is True and health["schema_version"] == len(MIGRATIONS)
    finally:
        await store.close()


async def test_the_phone_index_holds_a_keyed_hash_not_the_number(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "gateway.db", PHONE_KEY)
    await store.open()
    await store.intake(make_ticket(phone="13800138000"), RAW, "application/json", [])
    await store.close()
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        [(stored,)] = db.execute("SELECT complainant_phone_hash FROM tickets").fetchall()
    assert stored == hash_phone("+8613800138000", PHONE_KEY)
    assert "13800138000" not in stored
    assert stored != hash_phone("+8613800138000", b"another key")


async def test_racing_pushes_from_four_processes_create_one_ticket(tmp_path: Path) -> None:
    db = tmp_path / "gateway.db"
    store = SqliteStore(db, PHONE_KEY)
    await store.open()  # the schema exists before the race
    await store.close()
    procs = [
        await asyncio.create_subprocess_exec(sys.executable, "-c", _PUSHER, str(db), cwd=REPO,
                                             stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        for _ in range(4)
    ]
    outputs = [await p.communicate() for p in procs]
    assert all(p.returncode == 0 for p in procs), [err.decode() for _, err in outputs]
    results = [tuple(r) for out, _ in outputs for r in json.loads(out)]
    assert len(results) == 40
    assert sum(created for _, created in results) == 1
    assert len({ticket_id for ticket_id, _ in results}) == 1
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT COUNT(*) FROM tickets").fetchone() == (1,)
        assert conn.execute("SELECT COUNT(*) FROM deliveries").fetchone() == (1,)


async def test_a_file_from_a_newer_gateway_is_refused(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "gateway.db") as db:
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    store = SqliteStore(tmp_path / "gateway.db", PHONE_KEY)
    with pytest.raises(RuntimeError, match="newer than this gateway knows"):
        await store.open()


async def test_a_gateway_with_another_phone_key_refuses_to_open_the_file(tmp_path: Path) -> None:
    path = tmp_path / "gateway.db"
    first = SqliteStore(path, PHONE_KEY)
    await first.open()
    await first.intake(make_ticket(phone="13800138000"), RAW, "application/json", [national()])
    await first.close()
    other = SqliteStore(path, b"another-phone-hash-key-32-bytes!")
    with pytest.raises(PhoneKeyMismatch, match="HIG_PHONE_HASH_KEY"):
        await other.open()
    again = SqliteStore(path, PHONE_KEY)  # the same key: fine, and the refusal changed nothing
    await again.open()
    try:
        assert len(await again.search_tickets(TicketQuery(complainant_phone="13800138000"))) == 1
    finally:
        await again.close()


async def test_using_a_store_before_open_says_so(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="not open"):
        await SqliteStore(tmp_path / "gateway.db", PHONE_KEY).get_cursor("x")


async def test_open_store_chooses_by_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HIG_PHONE_HASH_KEY", raising=False)
    region = {"code": "522600", "name": "黔东南苗族侗族自治州"}
    sqlite_settings = GatewaySettings(region=region, data_dir=tmp_path)
    store = open_store(sqlite_settings)
    assert isinstance(store, SqliteStore) and store.path == tmp_path / "gateway.db"
    async with store:
        await store.enqueue("t1", "k1", [national()])
    assert (tmp_path / "phone-hash.key").stat().st_mode & 0o777 == 0o600

    redis_settings = GatewaySettings(region=region, data_dir=tmp_path,
                                     store={"kind": "redis", "redis_url": "redis://127.0.0.1:6379/0"})
    assert isinstance(open_store(redis_settings, phone_hash_key=b"k"), RedisStore)


async def test_concurrent_intakes_share_commits_and_a_failing_one_fails_alone(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "group.db", PHONE_KEY)
    await store.open()
    try:
        commits: list[str] = []
        assert store._executor.conn is not None
        # Counted on the store's own thread, where its connection runs every statement.
        await store._executor.run(store._executor.conn.set_trace_callback,
                                  lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None)
        first = make_ticket("GZ-GROUP-0")
        clash = make_ticket("GZ-GROUP-CLASH").model_copy(update={"ticket_id": first.ticket_id})
        tickets = [first, *(make_ticket(f"GZ-GROUP-{i}") for i in range(1, 40)), clash]
        results = await asyncio.gather(*(store.intake(t, RAW, "application/json", [national()]) for t in tickets),
                                       return_exceptions=True)
        await store._executor.run(store._executor.conn.set_trace_callback, None)

        *stored, refused = results
        assert isinstance(refused, ValueError) and "another source ticket" in str(refused)
        assert all(not isinstance(r, BaseException) and r.created for r in stored)
        for ticket in tickets[:-1]:
            assert await store.get_ticket(ticket.ticket_id) == ticket
        assert await store.get_ticket(first.ticket_id) == first  # the clash did not touch the first
        assert 1 <= len(commits) < len(tickets)  # 41 intakes, fewer fsyncs: they were committed in groups
    finally:
        await store.close()


async def test_an_intake_does_not_read_more_the_more_tickets_are_stored(tmp_path: Path) -> None:
    """Intake takes the partner's number (a deferred foreign key to the ticket) before it stores the ticket; SQLite
    then looks up the numbers naming the new ticket, which without an index on source_numbers(ticket_id) read every
    number stored. Counted in SQLite VM steps (the progress handler), not time: one intake into a store of 20
    tickets and one into a store of 2,020 execute about the same number of steps."""

    async def steps_of_one_intake(store: SqliteStore, no: str) -> int:
        steps = [0]

        def count() -> int:
            steps[0] += 1
            return 0

        assert store._executor.conn is not None
        await store._executor.run(store._executor.conn.set_progress_handler, count, 100)
        await store.intake(make_ticket(no), RAW, "application/json", [national()])
        await store._executor.run(store._executor.conn.set_progress_handler, None, 0)
        return steps[0] * 100

    store = SqliteStore(tmp_path / "growing.db", PHONE_KEY)
    await store.open()
    try:
        for n in range(20):
            await store.intake(make_ticket(f"GZ-FEW-{n}"), RAW, "application/json", [national()])
        few = await steps_of_one_intake(store, "GZ-AFTER-FEW")
        await asyncio.gather(*(store.intake(make_ticket(f"GZ-MANY-{n}"), RAW, "application/json", [national()])
                               for n in range(2000)))
        many = await steps_of_one_intake(store, "GZ-AFTER-MANY")
        assert many < 1.5 * few, (few, many)  # a read of 2,000 numbers is over ten thousand steps
    finally:
        await store.close()


async def test_a_duplicate_is_stored_linked_and_shown_back_in_one_commit(tmp_path: Path) -> None:
    """Intake of a duplicate: the look-up, the ticket as relinked and the link shown on the earlier ticket are one
    job of intake's group transaction (they were three acknowledged commits, each with its fsync)."""
    store = SqliteStore(tmp_path / "linked.db", PHONE_KEY)
    await store.open()
    try:
        mark = "phone:+8613985012345|uscc:91520100MA6DK2X98L"
        earlier = make_ticket("GZ-LINK-1")
        await store.intake(earlier, RAW, "application/json", [national()], link_marks=[mark])
        ticket = make_ticket("GZ-LINK-2")
        at = ticket.source.source_received_at
        query = LinkQuery((mark,), at - timedelta(days=30), at + timedelta(days=30))
        link = TicketLink(ticket_id=ticket.ticket_id, adapter_id=ticket.source.adapter_id,
                          source_ticket_no="GZ-LINK-2", received_at=at, score=0.9, similarity=0.9, days_apart=0.0,
                          reasons=["同一投诉人（联系电话相同）"], linked_at=at)

        def relink(found: list[LinkCandidate]) -> Relinked:
            linked = ticket.model_copy(update={"links": [link.model_copy(update={"ticket_id": found[0].ticket_id})]})
            return Relinked(linked, linked.model_dump_json(), [national()], {found[0].ticket_id: link}, 10)

        commits: list[str] = []
        assert store._executor.conn is not None
        await store._executor.run(store._executor.conn.set_trace_callback,
                                  lambda sql: commits.append(sql) if sql.strip().upper() == "COMMIT" else None)
        done = await store.intake_linking(ticket, RAW, "application/json", [national()], query, relink,
                                          link_marks=[mark])
        await store._executor.run(store._executor.conn.set_trace_callback, None)

        assert done.result.created and done.shown == (earlier.ticket_id,)
        assert len(commits) == 1
        assert [k.ticket_id for k in (await store.get_ticket(ticket.ticket_id) or ticket).links] == [earlier.ticket_id]
        shown = await store.get_ticket(earlier.ticket_id)
        assert shown is not None and [k.ticket_id for k in shown.links] == [ticket.ticket_id]
    finally:
        await store.close()


async def test_a_link_back_written_in_place_is_the_body_a_whole_save_would_write(tmp_path: Path) -> None:
    """SQLite shows a link back by setting the stored body's links and revision (json_set), not by reading and
    saving the whole earlier ticket: the body it leaves is byte for byte the JSON of the ticket with the link, one
    revision on, and the indexed columns are untouched."""
    store = SqliteStore(tmp_path / "back.db", PHONE_KEY)
    await store.open()
    try:
        earlier = make_ticket("GZ-BACK-1")
        await store.intake(earlier, RAW, "application/json", [national()])
        await store.save_ticket(earlier.model_copy(update={"national_registration_no": "12315-2024-000007"}), [],
                                expected_revision=earlier.lifecycle.revision)
        saved = await store.get_ticket(earlier.ticket_id)
        assert saved is not None
        new = make_ticket("GZ-BACK-2")
        link = TicketLink(ticket_id=new.ticket_id, adapter_id="legacy-12365", source_ticket_no="GZ-BACK-2",
                          received_at=new.source.source_received_at, score=0.875, similarity=0.8125, days_apart=1.5,
                          reasons=["同一投诉人（联系电话相同）", 'a "quoted" \\ reason'],
                          linked_at=datetime(2024, 3, 2, 10, 30, 15, 123000, tzinfo=UTC))

        assert await store.add_links_back({earlier.ticket_id: link}, most=10) == [earlier.ticket_id]

        with sqlite3.connect(tmp_path / "back.db") as db:
            body, revision, registration = db.execute(
                "SELECT body, revision, national_registration_no FROM tickets WHERE id = ?",
                (earlier.ticket_id,)).fetchone()
        after = saved.lifecycle.revision + 1
        expected = saved.model_copy(update={
            "links": [link], "lifecycle": saved.lifecycle.model_copy(update={"revision": after})})
        assert body == expected.model_dump_json()
        assert (revision, registration) == (after, "12315-2024-000007")
    finally:
        await store.close()


async def test_a_schema_2_file_is_upgraded_with_counts_of_what_it_holds_and_replay_budgets(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = SqliteStore(path, PHONE_KEY)
    await store.open()
    for i in range(3):
        await store.intake(make_ticket(f"GZ-OLD-{i}"), RAW, "application/json",
                           [national(), national(destination="credit")])
    [claimed] = await store.claim("national", "w", 60)
    await store.settle_delivered(claimed, attempt(claimed))
    await store.enqueue("t-old", "k-old", [national(destination="callback"), national(destination="callback")])
    await store.close()
    with sqlite3.connect(path) as db:  # back to schema 2, as a gateway of that version left it
        db.execute("UPDATE deliveries SET claim_rank = claim_rank - 100 WHERE claim_rank >= 100")  # none parked
        for name in ("deliveries_count_insert", "deliveries_count_update", "deliveries_count_delete",
                     "tickets_count_insert", "tickets_count_update", "tickets_count_delete",
                     "deliveries_order_park", "deliveries_order_next", "deliveries_order_replay"):
            db.execute(f"DROP TRIGGER {name}")
        db.execute("DROP TABLE delivery_counts")
        db.execute("DROP TABLE ticket_counts")
        db.execute("DROP INDEX deliveries_compactable")
        db.execute("ALTER TABLE deliveries DROP COLUMN compacted_at")
        db.execute("ALTER TABLE deliveries DROP COLUMN budget_attempts")
        db.execute("ALTER TABLE deliveries DROP COLUMN budget_since")
        db.execute("DROP TABLE store_facts")
        _drop_schema_18(db)
        _drop_schema_17(db)
        _drop_schema_16(db)
        _drop_schema_15(db)
        _drop_schema_14(db)
        _drop_schema_13(db)
        _drop_schema_12(db)
        _drop_schema_11(db)
        _drop_schema_10(db)
        db.execute("DROP INDEX tickets_held")
        db.execute("ALTER TABLE tickets DROP COLUMN held")
        db.execute("ALTER TABLE tickets DROP COLUMN revision")
        db.execute("PRAGMA user_version = 2")

    store = SqliteStore(path, PHONE_KEY)
    await store.open()
    try:
        stats = await store.lane_stats()
        assert (stats["national"]["delivered"], stats["national"]["pending"], stats["credit"]["pending"]) == (1, 2, 3)
        assert (await store.intake_stats(["city-12345-rest"]))["city-12345-rest"]["tickets"] == 3
        parked = await store._executor.run(store._executor.fetchall, "SELECT claim_rank >= 100 FROM deliveries"
                                           " WHERE destination = 'callback' ORDER BY rowid", ())
        assert [bool(r[0]) for r in parked] == [False, True]  # schema 6 parked the one waiting
        facts = await store._executor.run(store._executor.fetchall, "SELECT name FROM store_facts", ())
        assert [r[0] for r in facts] == ["phone_key_fingerprint"]  # schema 7: recorded by the upgrade
        assert await store.count_behind(datetime.now(UTC)) == 0  # schema 12: the echo starts with the next callback
        # and the triggers count from here on
        [claimed] = await store.claim("credit", "w", 60)
        stats = await store.lane_stats()
        assert (stats["credit"]["pending"], stats["credit"]["in_flight"]) == (2, 1)
        assert stats["credit"]["oldest_waiting_age_s"] >= 0.0
        await store.settle_dead(claimed, attempt(claimed, outcome=AttemptOutcome.PERMANENT, status_code=400))
        assert (await store.lane_stats())["credit"]["dead"] == 1
        assert (await store.health())["schema_version"] == len(MIGRATIONS)
        # schema 4: a delivery of the old file replays with a budget of its own
        assert await store.replay(delivery_ids=[claimed.delivery_id]) == [claimed.delivery_id]
        budgets = {c.delivery_id: c.budget_attempts for c in await store.claim("credit", "w", 60, limit=5)}
        assert budgets[claimed.delivery_id] == 1 and sorted(budgets.values()) == [0, 0, 1]
    finally:
        await store.close()


def _drop_schema_18(db: sqlite3.Connection) -> None:
    """Back to schema 17's link index in the file, keyed by 8-byte integers, with the keys the log holds."""
    db.execute("CREATE TABLE ticket_link_keys (link_key INTEGER NOT NULL, received_at INTEGER NOT NULL,"
               " ticket_id TEXT NOT NULL, PRIMARY KEY (link_key, received_at, ticket_id)) WITHOUT ROWID")
    for received, ticket_id, keys in db.execute("SELECT received_at, ticket_id, link_keys FROM link_log").fetchall():
        db.executemany("INSERT INTO ticket_link_keys VALUES (?, ?, ?)",
                       [(int(key), received, ticket_id) for key in keys.split()])
    db.execute("DROP TABLE link_log")


def _drop_schema_17(db: sqlite3.Connection) -> None:
    db.execute("DROP INDEX source_numbers_ticket")


def _drop_schema_16(db: sqlite3.Connection) -> None:
    """Back to schema 14's link index, keyed by 64 hex digits (empty)."""
    db.execute("DROP TABLE ticket_link_keys")
    db.execute("CREATE TABLE ticket_link_keys (link_key TEXT NOT NULL, received_at INTEGER NOT NULL,"
               " ticket_id TEXT NOT NULL, PRIMARY KEY (link_key, received_at, ticket_id)) WITHOUT ROWID")


def _drop_schema_15(db: sqlite3.Connection) -> None:
    db.execute("DROP TABLE source_numbers")


def _drop_schema_14(db: sqlite3.Connection) -> None:
    db.execute("DROP TABLE ticket_link_keys")


def _drop_schema_13(db: sqlite3.Connection) -> None:
    db.execute("DROP TABLE raw_versions")


def _drop_schema_12(db: sqlite3.Connection) -> None:
    db.execute("DROP TABLE partner_echo")
    db.execute("DROP INDEX quarantine_open_payload")
    for table, column in (("deliveries", "reports_sequence"), ("deliveries", "reports_status"),
                          ("quarantine", "payload_digest"), ("quarantine", "times_seen"),
                          ("quarantine", "last_seen_at")):
        db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")


def _drop_schema_11(db: sqlite3.Connection) -> None:
    db.execute("DROP TABLE alerts")


def _drop_schema_10(db: sqlite3.Connection) -> None:
    db.execute("DROP INDEX tickets_next_due")
    db.execute("ALTER TABLE tickets DROP COLUMN next_due_on")
    db.execute("DROP TABLE deadline_outcomes")


async def test_a_schema_9_file_indexes_the_due_days_of_tickets_still_awaiting_acceptance(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    store = SqliteStore(path, PHONE_KEY)
    await store.open()
    waiting, accepted, enquiry = (make_ticket(f"GZ-DUE-{i}") for i in range(3))
    for ticket, status in ((waiting, "RECEIVED"), (accepted, "ACCEPTED")):
        ticket.routing.deadlines = [Deadline(kind="acceptance", starts_on=date(2024, 6, 11), due_on=date(2024, 6, 20),
                                             working_days=7, rule_set="order20-2022", basis="7 working days")]
        ticket.lifecycle.status = status  # type: ignore[assignment]
    for ticket in (waiting, accepted, enquiry):
        await store.intake(ticket, RAW, "application/json", [])
    await store.close()
    with sqlite3.connect(path) as db:  # back to schema 9, as a gateway of that version left it
        _drop_schema_18(db)
        _drop_schema_17(db)
        _drop_schema_16(db)
        _drop_schema_15(db)
        _drop_schema_14(db)
        _drop_schema_13(db)
        _drop_schema_12(db)
        _drop_schema_11(db)
        _drop_schema_10(db)
        db.execute("PRAGMA user_version = 9")

    store = SqliteStore(path, PHONE_KEY)
    await store.open()
    try:
        found = await store.search_tickets(TicketQuery(due_before=date(2024, 6, 21)))
        assert [t.ticket_id for t in found] == [waiting.ticket_id]  # the accepted one: its limit no longer runs
        assert await store.on_time_counts(date(2024, 1, 1), date(2024, 12, 31)) == []
    finally:
        await store.close()


async def test_compaction_empties_the_body_and_keeps_the_row(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "compact.db", PHONE_KEY)
    await store.open()
    try:
        await store.intake(make_ticket("GZ-COMPACT-1"), RAW, "application/json", [national()])
        [claimed] = await store.claim("national", "w", 60)
        await store.settle_delivered(claimed, attempt(claimed))
        assert await store.compact_delivered(datetime.now(UTC) + timedelta(seconds=1)) == 1
        assert store._executor.conn is not None
        row = await store._executor.run(store._executor.fetchone, "SELECT length(body), compacted_at, state,"
                                        " idempotency_key FROM deliveries WHERE id = ?", (claimed.delivery_id,))
        assert row is not None and row[0] == 0 and row[1] is not None
        assert (row[2], row[3]) == ("delivered", claimed.idempotency_key)
    finally:
        await store.close()


async def test_intakes_racing_a_close_end_one_way_or_the_other_and_the_store_reopens(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "closing.db", PHONE_KEY)
    await store.open()
    await store.intake(make_ticket("GZ-BEFORE"), RAW, "application/json", [national()])
    # Scheduled, not yet started: they reach the store while close() is under way.
    intakes = [asyncio.ensure_future(store.intake(make_ticket(f"GZ-CLOSE-{i}"), RAW, "application/json",
                                                  [national()])) for i in range(30)]
    await store.close()
    outcomes = await asyncio.wait_for(asyncio.gather(*intakes, return_exceptions=True), 5)  # none hangs
    stored = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, BaseException)]
    assert refused and all(isinstance(o, RuntimeError) for o in refused)  # told the store is closing

    await store.open()
    try:
        assert (await store.intake(make_ticket("GZ-AFTER"), RAW, "application/json", [national()])).created
        assert (await store.lane_stats())["national"]["pending"] == len(stored) + 2  # with GZ-BEFORE
    finally:
        await store.close()


async def test_deliveries_waiting_behind_their_tickets_earlier_one_are_parked_out_of_the_claims_way(
        tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "order.db", PHONE_KEY)
    await store.open()
    try:
        first, second, third = await store.enqueue("t1", "k1", [national(), national(), national()])

        async def ranks() -> dict[str, int]:
            rows = await store._executor.run(store._executor.fetchall, "SELECT id, claim_rank FROM deliveries", ())
            return {str(r[0]): int(r[1]) for r in rows}

        assert [r >= 100 for r in (await ranks()).values()] == [False, True, True]
        [head] = await store.claim("national", "w", 30, limit=10)
        await store.settle_dead(head, attempt(head, outcome=AttemptOutcome.PERMANENT, status_code=400))
        assert (await ranks())[second] < 100 and (await ranks())[third] >= 100  # the next one may go
        [nxt] = await store.claim("national", "w", 30, limit=10)
        assert nxt.delivery_id == second
        await store.replay(delivery_ids=[first])  # the earliest again, ahead of the third
        assert (await ranks())[first] < 100 and (await ranks())[third] >= 100
        await store.settle_delivered(nxt, attempt(nxt))
        assert (await ranks())[third] >= 100  # still behind the replayed first
    finally:
        await store.close()


def _migrate(tmp_path: Path, *args: str, own_process: bool = False) -> Completed | subprocess.CompletedProcess[str]:
    """`python main.py migrate`: in its own process when `own_process`, else the same command line in this one."""
    config = tmp_path / "gateway.yaml"
    config.write_text("region: {code: '522600', name: 黔东南苗族侗族自治州}\n"
                      f"data_dir: {tmp_path / 'data'}\n", encoding="utf-8")
    env = {**os.environ, "HIG_PHONE_HASH_KEY": "migrate-test-key"}
    if not own_process:
        return run_hig("migrate", *args, "--config", str(config), env=env)
    return subprocess.run([sys.executable, "main.py", "migrate", *args, "--config", str(config)],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False, env=env)


def test_migrate_dry_run_prints_the_files_pending_sql_and_migrate_applies_it(tmp_path: Path) -> None:
    dry = _migrate(tmp_path, "--dry-run", own_process=True)
    assert dry.returncode == 0, dry.stderr
    assert "schema version 0; would apply 1, 2," in dry.stdout and "CREATE TABLE tickets" in dry.stdout
    assert not (tmp_path / "data" / "gateway.db").exists()  # nothing made

    applied = _migrate(tmp_path)
    assert applied.returncode == 0, applied.stderr
    newest = int(applied.stdout.rsplit("to ", 1)[1])
    assert "migrated from version 0 to" in applied.stdout
    with sqlite3.connect(tmp_path / "data" / "gateway.db") as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == newest >= 9
    assert "up to date" in _migrate(tmp_path, "--dry-run").stdout


async def test_migration_15_gives_each_number_stored_twice_before_to_its_first_ticket(tmp_path: Path) -> None:
    path = tmp_path / "numbers.db"
    store = SqliteStore(path, PHONE_KEY)
    await store.open()
    first, other = make_ticket("GZ-NO-1", version="1"), make_ticket("GZ-NO-2")
    for ticket in (first, other):
        await store.intake(ticket, RAW, "application/json", [])
    await store.close()
    second = make_ticket("GZ-NO-1", version="2")
    with sqlite3.connect(path) as db:  # back to schema 14, holding the duplicate a gateway of that version made
        _drop_schema_18(db)
        _drop_schema_17(db)
        _drop_schema_16(db)
        _drop_schema_15(db)
        db.execute("INSERT INTO tickets (id, idempotency_key, adapter_id, source_system, source_ticket_no, status,"
                   " last_sequence, created_at, updated_at, body) SELECT ?, ?, adapter_id, source_system,"
                   " source_ticket_no, status, last_sequence, created_at + 1000, updated_at, ? FROM tickets"
                   " WHERE id = ?", (second.ticket_id, second.idempotency_key, second.model_dump_json(),
                                     first.ticket_id))
        db.execute("PRAGMA user_version = 14")

    store = SqliteStore(path, PHONE_KEY)
    await store.open()
    try:
        assert await store.find_ticket_id(source=SourceNumber("city-12345", "GZ-NO-1")) == first.ticket_id
        assert await store.find_ticket_id(source=SourceNumber("city-12345", "GZ-NO-2")) == other.ticket_id
        again = await store.intake(make_ticket("GZ-NO-1", version="2"), RAW, "application/json", [])
        assert (again.created, again.number_taken, again.ticket_id) == (False, False, second.ticket_id)
        third = await store.intake(make_ticket("GZ-NO-1", version="3"), RAW, "application/json", [])
        assert (third.created, third.number_taken, third.ticket_id) == (False, True, first.ticket_id)
    finally:
        await store.close()


async def test_migration_16_keeps_the_link_keys_stored_before_as_numbers(tmp_path: Path) -> None:
    path = tmp_path / "links.db"
    store = SqliteStore(path, PHONE_KEY)
    await store.open()
    earlier = make_ticket("GZ-LK-1")
    await store.intake(earlier, RAW, "application/json", [])
    await store.close()
    mark = "phone:+8613985012345|uscc:91520100MA6DK2X98L"
    received = int(earlier.source.source_received_at.timestamp() * 1000)
    # A schema 15 gateway indexed each mark under its keyed hash in hex.
    hex_key = hmac.new(PHONE_KEY, b"link\x1f" + mark.encode(), hashlib.sha256).hexdigest()
    with sqlite3.connect(path) as db:
        _drop_schema_18(db)
        _drop_schema_17(db)
        _drop_schema_16(db)
        db.execute("INSERT INTO ticket_link_keys VALUES (?, ?, ?)", (hex_key, received, earlier.ticket_id))
        db.execute("PRAGMA user_version = 15")

    store = SqliteStore(path, PHONE_KEY)
    await store.open()
    try:
        later = make_ticket("GZ-LK-2")
        await store.intake(later, RAW, "application/json", [], link_marks=[mark])
        at = earlier.source.source_received_at
        found = await store.find_link_candidates(LinkQuery((mark,), at - timedelta(days=1), at + timedelta(days=1)))
        assert {c.ticket_id for c in found} == {earlier.ticket_id, later.ticket_id}
    finally:
        await store.close()
    with sqlite3.connect(path) as db:
        logged = dict(db.execute("SELECT ticket_id, link_keys FROM link_log").fetchall())  # schema 18
        indexed = db.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'source_numbers'"
                             " AND sql IS NOT NULL").fetchall()
    # The first 16 hex digits as a signed 64-bit integer (schema 16), carried into the log (schema 18).
    assert logged[earlier.ticket_id] == str(int.from_bytes(bytes.fromhex(hex_key[:16]), "big", signed=True))
    assert indexed == [("source_numbers_ticket",)]  # schema 17
