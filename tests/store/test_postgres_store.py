"""What only the PostgreSQL store does: its migrations, its bounded pool, LISTEN/NOTIFY wake-ups and claims that
several processes' pools share (each test in a schema of its own on the real PostgreSQL, dropped afterwards)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from gateway.store import PhoneKeyMismatch, SourceNumber, open_store
from gateway.store.errors import SchemaTooNew, StoreBusy, StoreUnavailable
from gateway.store.migrations import recorded_sql
from gateway.store.postgres import PostgresStore
from gateway.store.postgres.connection import LISTENER_NAME, PoolSettings
from gateway.store.postgres.schema import MIGRATIONS, schema_sql
from tests.delivery.delivery_support import eventually
from tests.hardening.live_gateway import closed_port
from tests.hig_command import Completed, run_hig
from tests.store.postgres_schemas import POSTGRES_URL, drop_schema, new_schema, pool_settings
from tests.store.store_support import attempt, make_ticket, national

PHONE_KEY = b"test-phone-hash-key"
REPO_ROOT = Path(__file__).resolve().parents[2]
TABLES = {"tickets", "raw_payloads", "deliveries", "attempts", "quarantine", "cursors", "locks", "nonces",
          "audit_log", "minute_counts", "store_facts", "schema_migrations", "deadline_outcomes",
          "partner_echo", "alerts", "raw_versions", "ticket_link_keys", "lane_counts", "source_numbers"}


@pytest.fixture
async def schema() -> AsyncIterator[str]:
    name = new_schema()
    yield name
    await drop_schema(name)


@pytest.fixture
async def raw() -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(POSTGRES_URL)
    yield conn
    await conn.close()


async def _opened(settings: PoolSettings, key: bytes = PHONE_KEY) -> PostgresStore:
    store = PostgresStore(settings, key)
    await store.open()
    return store


async def _tables(raw: asyncpg.Connection, schema: str) -> set[str]:
    rows = await raw.fetch("SELECT table_name FROM information_schema.tables WHERE table_schema = $1", schema)
    return {r["table_name"] for r in rows}


# -- migrations ---------------------------------------------------------------------------------------

async def test_opening_a_fresh_schema_makes_every_table_and_records_every_version(
        schema: str, raw: asyncpg.Connection) -> None:
    store = await _opened(pool_settings(schema))
    await store.close()
    assert await _tables(raw, schema) == TABLES
    rows = await raw.fetch(f'SELECT version FROM "{schema}".schema_migrations ORDER BY version')  # noqa: S608
    assert [r["version"] for r in rows] == [1, 2, 3]


async def test_two_gateways_opening_one_fresh_schema_at_once_migrate_it_once(
        schema: str, raw: asyncpg.Connection) -> None:
    stores = await asyncio.gather(*(_opened(pool_settings(schema)) for _ in range(3)))
    for store in stores:
        await store.close()
    assert await raw.fetchval(f'SELECT count(*) FROM "{schema}".schema_migrations') == 3  # noqa: S608


async def test_a_schema_newer_than_the_gateway_is_refused(schema: str, raw: asyncpg.Connection) -> None:
    await (await _opened(pool_settings(schema))).close()
    await raw.execute(f"INSERT INTO \"{schema}\".schema_migrations (version, description)"  # noqa: S608
                      " VALUES (99, 'from a newer gateway')")
    with pytest.raises(SchemaTooNew, match="version 99, newer than this gateway knows"):
        await _opened(pool_settings(schema))


async def test_a_gateway_with_another_phone_key_refuses_the_schema(schema: str) -> None:
    await (await _opened(pool_settings(schema))).close()
    with pytest.raises(PhoneKeyMismatch, match="HIG_PHONE_HASH_KEY"):
        await _opened(pool_settings(schema), b"another-key")


def _main(tmp_path: Path, schema: str, *args: str) -> Completed:
    """`python main.py *args` on the test's schema, called in this process (tests/store/test_sqlite_store.py starts
    the real `migrate`)."""
    config = tmp_path / "gateway.yaml"
    config.write_text("region: {code: '522600', name: 黔东南苗族侗族自治州}\n"
                      f"data_dir: {tmp_path / 'data'}\n", encoding="utf-8")
    env = {**os.environ, "HIG_STORE__KIND": "postgres", "HIG_STORE__POSTGRES_URL": POSTGRES_URL,
           "HIG_STORE__POSTGRES_SCHEMA": schema}
    return run_hig(*args, "--config", str(config), env=env)


async def test_migrate_dry_run_prints_the_sql_and_migrate_applies_it(
        tmp_path: Path, schema: str, raw: asyncpg.Connection) -> None:
    dry = await asyncio.to_thread(_main, tmp_path, schema, "migrate", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "schema version 0; would apply 1, 2, 3 of 3" in dry.stdout
    assert f'CREATE SCHEMA IF NOT EXISTS "{schema}"' in dry.stdout
    assert "CREATE TABLE tickets" in dry.stdout and "FOR EACH ROW EXECUTE FUNCTION notify_lane()" in dry.stdout
    assert "CREATE TABLE lane_counts" in dry.stdout and "CREATE TABLE source_numbers" in dry.stdout
    assert await _tables(raw, schema) == set()  # nothing changed

    applied = await asyncio.to_thread(_main, tmp_path, schema, "migrate")
    assert applied.returncode == 0, applied.stderr
    assert "migrated from version 0 to 3" in applied.stdout
    assert await _tables(raw, schema) == TABLES
    again = await asyncio.to_thread(_main, tmp_path, schema, "migrate", "--dry-run")
    assert "schema version 3, up to date" in again.stdout


async def test_the_dry_run_prints_a_script_that_runs_as_printed(
        tmp_path: Path, schema: str, raw: asyncpg.Connection) -> None:
    # An operator may hand the printed SQL to a DBA to run: every line that is not SQL must be a comment.
    dry = await asyncio.to_thread(_main, tmp_path, schema, "migrate", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    await raw.execute(dry.stdout)
    assert await _tables(raw, schema) == TABLES
    again = await asyncio.to_thread(_main, tmp_path, schema, "migrate", "--dry-run")
    assert "schema version 3, up to date" in again.stdout


async def test_a_quote_in_a_migration_description_is_recorded_as_written(schema: str, raw: asyncpg.Connection) -> None:
    await raw.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"; SET search_path TO "{schema}";'
                      " CREATE TABLE schema_migrations (version int PRIMARY KEY, description text NOT NULL)")
    await raw.execute(recorded_sql(9, "the partner's number, taken once", "SELECT 1;"))
    assert await raw.fetchval("SELECT description FROM schema_migrations WHERE version = 9") == (
        "the partner's number, taken once")


async def test_migrate_refuses_a_newer_schema_naming_both_versions(
        tmp_path: Path, schema: str, raw: asyncpg.Connection) -> None:
    await (await _opened(pool_settings(schema))).close()
    await raw.execute(f"INSERT INTO \"{schema}\".schema_migrations (version, description) VALUES (7, 'newer')")  # noqa: S608
    refused = await asyncio.to_thread(_main, tmp_path, schema, "migrate")
    assert refused.returncode == 1
    assert "version 7, newer than this gateway knows (3)" in refused.stderr


# -- connections and the pool -----------------------------------------------------------------------

async def test_a_database_that_does_not_answer_is_a_store_unavailable_error(schema: str) -> None:
    settings = PoolSettings(url=f"postgresql://postgres@127.0.0.1:{closed_port()}/test", schema=schema,
                            connect_timeout=2)
    with pytest.raises(StoreUnavailable, match="cannot be reached"):
        await _opened(settings)


async def test_an_exhausted_pool_fails_a_request_after_a_bounded_wait_naming_the_setting(
        schema: str, raw: asyncpg.Connection) -> None:
    store = await _opened(pool_settings(schema, size=2, acquire_timeout=0.5))
    try:
        ticket = make_ticket()
        await store.intake(ticket, b"{}", "application/json", [])
        async with raw.transaction():  # a DBA's lock holds both of the pool's connections in their reads
            await raw.execute(f'LOCK TABLE "{schema}".tickets IN ACCESS EXCLUSIVE MODE')
            held = [asyncio.create_task(store.get_ticket(ticket.ticket_id)) for _ in range(2)]

            async def both_wait() -> bool:
                return bool(await raw.fetchval(
                    "SELECT count(*) = 2 FROM pg_locks WHERE NOT granted AND relation = $1::regclass",
                    f'"{schema}".tickets'))

            await eventually(both_wait, within=30)
            with pytest.raises(StoreBusy, match=r"pool of 2, store\.postgres_pool_size"):
                await store.get_cursor("city-12345-rest")
        assert [await t for t in held] == [ticket, ticket]  # the lock gone, the waiting reads finish
        assert await store.get_cursor("city-12345-rest") is None  # and the pool serves again
    finally:
        await store.close()


async def test_a_released_connection_sends_no_reset_statements_and_an_open_transaction_is_rolled_back(
        schema: str) -> None:
    """The pool lends a connection again as the store left it, with one exception: a transaction left open (a
    request cancelled inside it) is rolled back. No `RESET ALL` / `UNLISTEN *` round trip on every release."""
    store = await _opened(pool_settings(schema, size=1))
    sent: list[str] = []
    try:
        async with store._db.connection() as conn:
            conn.add_query_logger(lambda record: sent.append(record.query))
            await conn.fetchval("SELECT 1")
        async with store._db.connection() as conn:
            await conn.execute("BEGIN")
            await conn.execute("CREATE TABLE left_open (n int)")  # in a transaction nobody commits
        async with store._db.connection() as again:
            assert not again.is_in_transaction()
            assert await again.fetchval("SELECT to_regclass('left_open')") is None  # rolled back, not committed
    finally:
        await store.close()
    assert sent[0] == "SELECT 1"
    assert not [q for q in sent if any(word in q for word in ("RESET ALL", "UNLISTEN", "CLOSE ALL", "advisory"))]
    assert "ROLLBACK" in sent  # the connection left in a transaction, and only that one


# -- several processes on one schema -----------------------------------------------------------------

async def test_claims_through_two_pools_never_hand_out_one_delivery_twice(schema: str) -> None:
    one, two = await _opened(pool_settings(schema)), await _opened(pool_settings(schema))
    try:
        for start in range(0, 300, 50):
            await asyncio.gather(*(one.enqueue(f"t{n}", f"k{n}", [national()]) for n in range(start, start + 50)))
        claimed: list[str] = []

        async def worker(store: PostgresStore, name: str) -> None:
            while batch := await store.claim("national", name, 30, limit=7):
                claimed.extend(c.delivery_id for c in batch)
                for c in batch:
                    await store.settle_delivered(c, attempt(c))

        await asyncio.gather(*(worker(one if i % 2 else two, f"w{i}") for i in range(8)))
        assert len(claimed) == 300 and len(set(claimed)) == 300
        assert (await one.lane_stats())["national"]["delivered"] == 300
    finally:
        await one.close()
        await two.close()


async def test_work_enqueued_through_another_pool_wakes_a_watching_lane(schema: str) -> None:
    watcher, writer = await _opened(pool_settings(schema)), await _opened(pool_settings(schema))
    woken: asyncio.Queue[str | None] = asyncio.Queue()
    try:
        await watcher.watch_lanes(woken.put_nowait)
        assert await asyncio.wait_for(woken.get(), 30) is None  # listening: whatever came before, look now
        await writer.intake(make_ticket(), b"{}", "application/json", [national(), national(destination="credit")])
        got = {await asyncio.wait_for(woken.get(), 30), await asyncio.wait_for(woken.get(), 30)}
        assert got == {"national", "credit"}

        [c] = await writer.claim("national", "w", 30)  # a retry due later wakes nobody; a release does
        await writer.settle_retry(c, attempt(c, status_code=503), c.lease_until)
        [c] = await writer.claim("credit", "w", 30)
        await writer.release(c)
        assert await asyncio.wait_for(woken.get(), 30) == "credit"
        assert woken.empty()
    finally:
        await watcher.close()
        await writer.close()


async def test_the_lane_listener_reconnects_by_itself_when_its_connection_is_killed(
        schema: str, raw: asyncpg.Connection) -> None:
    watcher, writer = await _opened(pool_settings(schema)), await _opened(pool_settings(schema))
    woken: asyncio.Queue[str | None] = asyncio.Queue()
    try:
        await watcher.watch_lanes(woken.put_nowait)
        assert await asyncio.wait_for(woken.get(), 30) is None
        killed = await raw.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = $1"
            " AND query ILIKE 'LISTEN%' AND query ILIKE $2", LISTENER_NAME, f"%lanes_{schema}%")
        assert killed == 1
        assert await asyncio.wait_for(woken.get(), 30) is None  # listening again: look for what was missed
        await writer.enqueue("t1", "k1", [national()])
        assert await asyncio.wait_for(woken.get(), 30) == "national"
    finally:
        await watcher.close()
        await writer.close()


async def test_health_reports_durability_from_the_servers_settings(schema: str) -> None:
    from gateway.config import GatewaySettings, StoreSettings

    settings = GatewaySettings.model_validate({
        "region": {"code": "522600", "name": "黔东南苗族侗族自治州"},
        "store": StoreSettings(kind="postgres", postgres_url=POSTGRES_URL, postgres_schema=schema)})
    async with open_store(settings, phone_hash_key=PHONE_KEY) as store:
        health = await store.health()
    assert (health["reachable"], health["persistent"], health["warnings"]) == (True, True, [])
    assert (health["kind"], health["schema"]) == ("postgres", schema)


# -- lane counts (migration 2) ------------------------------------------------------------------------

async def _deliveries_by_lane_and_state(raw: asyncpg.Connection, schema: str) -> dict[tuple[str, str], int]:
    rows = await raw.fetch(f'SELECT destination, state, count(*) AS n FROM "{schema}".deliveries'  # noqa: S608
                           " GROUP BY destination, state")
    return {(r["destination"], r["state"]): r["n"] for r in rows}


async def test_migration_2_counts_the_deliveries_a_version_1_schema_already_holds(
        schema: str, raw: asyncpg.Connection) -> None:
    async with raw.transaction():  # a schema as a gateway of version 1 left it
        await raw.execute(schema_sql(schema))
        await raw.execute(MIGRATIONS[0].sql)
        await raw.execute("INSERT INTO schema_migrations (version, description) VALUES (1, 'v1')")
    kept = [("national", "pending")] * 3 + [("national", "delivered")] * 2 + [("credit", "dead")]
    await raw.executemany(
        "INSERT INTO deliveries (id, ticket_id, destination, kind, idempotency_key, body, content_type, headers,"
        " priority, state, claim_rank, due_at, created_at)"
        " VALUES ($1, $1, $2, 'forward', $1, ''::bytea, 'application/json', '{}', 1, $3, 2, now(), now())",
        [(f"d{n}", lane, state) for n, (lane, state) in enumerate(kept)])

    store = await _opened(pool_settings(schema))
    try:
        stats = await store.lane_stats()
    finally:
        await store.close()
    assert (stats["national"]["pending"], stats["national"]["delivered"], stats["national"]["dead"]) == (3, 2, 0)
    assert (stats["credit"]["dead"], stats["credit"]["pending"]) == (1, 0)


async def test_lane_counts_stay_exact_while_two_pools_claim_settle_reap_and_read_them(
        schema: str, raw: asyncpg.Connection) -> None:
    one, two = await _opened(pool_settings(schema)), await _opened(pool_settings(schema))
    try:
        for start in range(0, 300, 50):
            await asyncio.gather(*(one.enqueue(f"t{n}", f"k{n}", [national()]) for n in range(start, start + 50)))
        working = True
        totals: list[float] = []

        async def worker(store: PostgresStore, name: str) -> None:
            while batch := await store.claim("national", name, 30, limit=7):
                for c in batch:
                    await store.settle_delivered(c, attempt(c))

        async def reader(store: PostgresStore) -> None:  # each read folds the counts first
            while working:
                stats = (await store.lane_stats())["national"]
                totals.append(sum(stats[s] for s in ("pending", "in_flight", "retrying", "delivered", "dead")))
                await store.reap_expired_leases(datetime.now(UTC))

        readers = [asyncio.create_task(reader(store)) for store in (one, two)]
        await asyncio.gather(*(worker(one if i % 2 else two, f"w{i}") for i in range(8)))
        working = False
        await asyncio.gather(*readers)

        assert totals and set(totals) == {300}  # every read saw every delivery in exactly one state
        stats = await two.lane_stats()
        assert _counted(stats) == await _deliveries_by_lane_and_state(raw, schema) == {("national", "delivered"): 300}
        assert await raw.fetchval(f'SELECT count(*) FROM "{schema}".lane_counts') == 1  # folded  # noqa: S608
    finally:
        await one.close()
        await two.close()


def _counted(stats: dict[str, dict[str, float]]) -> dict[tuple[str, str], int]:
    return {(lane, state): int(n) for lane, counts in stats.items() for state, n in counts.items()
            if state != "oldest_waiting_age_s" and n}


async def test_a_dbas_statement_from_another_search_path_is_counted(schema: str, raw: asyncpg.Connection) -> None:
    store = await _opened(pool_settings(schema))
    try:
        for n in range(3):
            await store.enqueue(f"t{n}", f"k{n}", [national()])
        await raw.execute(f'UPDATE "{schema}".deliveries SET state = \'dead\' WHERE ticket_id = \'t1\'')  # noqa: S608
        await raw.execute(f'DELETE FROM "{schema}".deliveries WHERE ticket_id = \'t2\'')  # noqa: S608
        assert _counted(await store.lane_stats()) == {("national", "pending"): 1, ("national", "dead"): 1}
    finally:
        await store.close()


async def test_migration_3_gives_each_number_stored_twice_before_to_its_first_ticket(
        schema: str, raw: asyncpg.Connection) -> None:
    async with raw.transaction():  # a schema as a gateway of version 2 left it, holding a duplicate it made
        await raw.execute(schema_sql(schema))
        for migration in MIGRATIONS[:2]:
            await raw.execute(migration.sql)
            await raw.execute("INSERT INTO schema_migrations (version, description) VALUES ($1, 'before')",
                              migration.version)
        first, second = make_ticket("GZ-NO-1", version="1"), make_ticket("GZ-NO-1", version="2")
        for n, ticket in enumerate((first, second)):
            await raw.execute(
                "INSERT INTO tickets (id, idempotency_key, adapter_id, source_system, source_ticket_no, status,"
                " last_sequence, revision, created_at, updated_at, body) VALUES ($1, $2, 'city-12345-rest',"
                " 'city-12345', 'GZ-NO-1', 'RECEIVED', -1, 0, now() + make_interval(secs => $3), now(), $4::json)",
                ticket.ticket_id, ticket.idempotency_key, n, ticket.model_dump_json())

    store = await _opened(pool_settings(schema))
    try:
        assert await store.find_ticket_id(source=SourceNumber("city-12345", "GZ-NO-1")) == first.ticket_id
        again = await store.intake(make_ticket("GZ-NO-1", version="2"), b"{}", "application/json", [])
        assert (again.created, again.number_taken, again.ticket_id) == (False, False, second.ticket_id)
        third = await store.intake(make_ticket("GZ-NO-1", version="3"), b"{}", "application/json", [])
        assert (third.created, third.number_taken, third.ticket_id) == (False, True, first.ticket_id)
    finally:
        await store.close()
