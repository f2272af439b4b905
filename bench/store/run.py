"""Store throughput: intake and claim+ack on SQLite, Redis and PostgreSQL, each against the bare client doing the same
writes.

Run from the repository root:  .venv/bin/python -m bench.store.run [--n 2000] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import asyncpg
from redis import Redis as SyncRedis
from redis.asyncio import Redis

from contracts.base import CHINA_STANDARD_TIME
from contracts.delivery import AttemptOutcome, AttemptReceipt, ClaimedDelivery, DeliveryKind, OutboxEntry
from contracts.ticket import Ticket
from gateway.store.base import Store
from gateway.store.postgres import PoolSettings, PostgresStore
from gateway.store.postgres.lanes import _CLAIM, _SETTLE
from gateway.store.postgres.schema import migrate
from gateway.store.postgres.tickets import _INTAKE
from gateway.store.redis import GROUP, RedisKeys, RedisStore
from gateway.store.sqlite import MIGRATIONS, SqliteStore, StoreThread

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "benchmarks.md"
COMMAND = ".venv/bin/python -m bench.store.run --write-docs"
KEY = b"bench-phone-hash-key"
BODY = json.dumps({"ticket": "x" * 600}).encode()  # a forward body of a typical size
RAW = json.dumps({"hotlineNo": "KL2024", "appealContent": "预付卡商家跑路" * 40}, ensure_ascii=False).encode()


@dataclass
class Row:
    store: str
    operation: str
    store_rate: float
    bare_rate: float
    ratios: tuple[float, ...] = ()  # one per repetition, when summarised

    @property
    def ratio(self) -> float:
        return self.store_rate / self.bare_rate


def summarise(runs: list[list[Row]]) -> list[Row]:
    """Median rates over repetitions, the median ratio, and every repetition's ratio for the range."""
    rows = []
    for same in zip(*runs, strict=True):
        ratios = tuple(r.ratio for r in same)
        row = Row(same[0].store, same[0].operation, statistics.median(r.store_rate for r in same),
                  statistics.median(r.bare_rate for r in same), ratios)
        rows.append(row)
    return rows


def tickets(n: int, run: str) -> list[Ticket]:
    at = datetime(2024, 6, 11, 9, 30, tzinfo=CHINA_STANDARD_TIME)
    return [
        Ticket.model_validate({
            "source": {"source_system": "city-12345", "adapter_id": "city-12345-rest",
                       "source_ticket_no": f"KL{run}-{i:06d}", "source_received_at": at},
            "classification": {"business_type": "02", "channel": "09", "origin_hotline": "12345"},
            "registration": {"registered_at": at, "request": "退货并退还货款299元",
                             "content": "消费者在凯里市某商行购买电饭煲，使用三天后无法加热，要求退货遭拒。"},
            "complainant": {"name": "杨某某", "phone": "13800138000", "address": "贵州省黔东南州凯里市北京东路1号"},
            "respondent": {"name": "凯里市某电器商行", "uscc": "91350100M000100Y43"},
        })
        for i in range(n)
    ]


def outbox() -> list[OutboxEntry]:
    return [OutboxEntry(destination="national", kind=DeliveryKind.FORWARD, body=BODY)]


def receipt(claim: ClaimedDelivery) -> AttemptReceipt:
    return AttemptReceipt(delivery_id=claim.delivery_id, number=1, started_at=datetime.now(UTC), duration_ms=3.0,
                          status_code=200, outcome=AttemptOutcome.SUCCESS, response_body='{"code":0}')


async def compare(n: int, store_step: Callable[[int], Awaitable[None]],
                  bare_step: Callable[[int], Awaitable[None] | None], rounds: int = 5) -> tuple[float, float]:
    """Ops/s of the store and of the bare client, run in alternating rounds so both see the same machine load."""
    spent = [0.0, 0.0]
    done = 0
    for r in range(rounds):
        chunk = range(done, n * (r + 1) // rounds)
        for side, step in enumerate((store_step, bare_step)):
            start = time.perf_counter()
            for i in chunk:
                result = step(i)
                if result is not None:
                    await result
            spent[side] += time.perf_counter() - start
        done = chunk.stop
    return n / spent[0], n / spent[1]


# -- SQLite -----------------------------------------------------------------------------------------

def bare_sqlite(path: Path, sync: str) -> sqlite3.Connection:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={sync}")
    db.execute("BEGIN")
    for statement in MIGRATIONS[0].split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("COMMIT")
    return db


def bare_sqlite_intake(db: sqlite3.Connection, t: Ticket) -> None:
    """The same three inserts in one transaction, with plain sqlite3 on the calling thread."""
    now = time.time_ns() // 1_000_000
    db.execute("BEGIN IMMEDIATE")
    db.execute(
        "INSERT INTO tickets (id, idempotency_key, adapter_id, source_system, source_ticket_no, status,"
        " respondent_uscc, respondent_name, complainant_phone_hash, last_sequence, created_at, updated_at, body)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING RETURNING id",
        (t.ticket_id, t.idempotency_key, "city-12345-rest", "city-12345", t.source.source_ticket_no, "RECEIVED",
         t.respondent.uscc, t.respondent.name, "h", -1, now, now, t.model_dump_json()),
    ).fetchone()
    db.execute("INSERT INTO raw_payloads VALUES (?,?,?,?)", (t.ticket_id, "application/json", RAW, now))
    db.execute(
        "INSERT INTO deliveries (id, ticket_id, destination, kind, idempotency_key, body, content_type, headers,"
        " priority, state, claim_rank, due_at, created_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
        (uuid.uuid4().hex, t.ticket_id, "national", "forward", t.idempotency_key, BODY, "application/json", "{}",
         1, "pending", 2, now, now),
    )
    db.execute("COMMIT")


def bare_sqlite_claim_ack(db: sqlite3.Connection) -> None:
    now = time.time_ns() // 1_000_000
    db.execute("BEGIN IMMEDIATE")
    row = db.execute(
        "UPDATE deliveries SET return_state = state, state = 'in_flight', lease_token = ?, lease_until = ?,"
        " worker_id = 'w' WHERE id = (SELECT id FROM deliveries WHERE destination = 'national'"
        " AND state IN ('pending', 'retrying') AND due_at <= ? ORDER BY claim_rank, due_at, rowid LIMIT 1)"
        " RETURNING id, body, lease_token",
        (secrets.token_hex(12), now + 30_000, now),
    ).fetchone()
    db.execute("COMMIT")
    db.execute("BEGIN IMMEDIATE")
    db.execute(
        "UPDATE deliveries SET state = 'delivered', attempts = attempts + 1, lease_token = NULL, delivered_at = ?"
        " WHERE id = ? AND state = 'in_flight' AND lease_token = ?", (now, row[0], row[2]),
    )
    db.execute("INSERT INTO attempts VALUES (?,?,?,?,?,?,?,?)", (row[0], 1, now, 3.0, 200, None, "success", "{}"))
    db.execute("COMMIT")


async def bench_sqlite(n: int, work: Path) -> list[Row]:
    return [*await bench_sqlite_sync(n, work, "FULL", with_claims=True),
            *await bench_sqlite_sync(n, work, "NORMAL", with_claims=False)]


async def bench_sqlite_sync(n: int, work: Path, sync: Literal["FULL", "NORMAL"], *, with_claims: bool) -> list[Row]:
    batch, bare_batch = tickets(n, f"s{sync}"), tickets(n, f"b{sync}")
    store = SqliteStore(work / f"store-{sync}.db", KEY, acknowledged_sync=sync)
    await store.open()
    db = bare_sqlite(work / f"bare-{sync}.db", sync)
    try:
        rows = [Row("sqlite", f"intake (synchronous={sync})", *await compare(
            n, lambda i: _intake(store, batch[i]), lambda i: bare_sqlite_intake(db, bare_batch[i])))]
        if with_claims:
            db.execute("PRAGMA synchronous=NORMAL")
            rows.append(Row("sqlite", "claim+ack (synchronous=NORMAL)", *await compare(
                n, lambda _: _claim_ack(store), lambda _: bare_sqlite_claim_ack(db))))
        return rows
    finally:
        await store.close()
        db.close()


async def _intake(store: Store, t: Ticket) -> None:
    await store.intake(t, RAW, "application/json", outbox())


async def _claim_ack(store: Store) -> None:
    [claim] = await store.claim("national", "bench", 30)
    await store.settle_delivered(claim, receipt(claim))


# -- Redis ------------------------------------------------------------------------------------------

async def bench_redis(n: int, url: str) -> list[Row]:
    ns_store, ns_bare = f"bench-{uuid.uuid4().hex[:8]}", f"bench-{uuid.uuid4().hex[:8]}"
    store = RedisStore(url, KEY, namespace=ns_store)
    await store.open()
    client = Redis.from_url(url)
    keys = RedisKeys(ns_bare)
    lane = keys.lane("national")
    await client.xgroup_create(lane.normal, GROUP, id="0", mkstream=True)
    try:
        batch, bare_batch = tickets(n, "rs"), tickets(n, "rb")

        async def bare_intake(i: int) -> None:
            # The same writes as one MULTI: idempotency record, ticket, raw payload, index, delivery, stream entry.
            t = bare_batch[i]
            assert t.idempotency_key is not None
            now = time.time_ns() // 1_000_000
            did = uuid.uuid4().hex
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(keys.idempotency(t.idempotency_key), t.ticket_id, nx=True)
                pipe.hset(keys.ticket(t.ticket_id), mapping={"json": t.model_dump_json(), "seq": -1, "created": now})
                pipe.hset(keys.raw(t.ticket_id), mapping={"body": RAW, "ctype": "application/json"})
                pipe.zadd(keys.tickets_by_time, {t.ticket_id: now})
                pipe.hset(lane.record(did), mapping={"id": did, "ticket": t.ticket_id, "body": BODY,
                                                     "state": "pending", "created": now})
                pipe.xadd(lane.normal, {"d": did})
                await pipe.execute()


        async def bare_claim_ack(_: int) -> None:
            reply: Any = await client.xreadgroup(GROUP, "bench", {lane.normal: ">"}, count=1)
            entry_id: bytes = reply[0][1][0][0]
            did: str = reply[0][1][0][1][b"d"].decode()
            await client.hset(lane.record(did), mapping={"state": "in_flight", "lease_until": 0})
            async with client.pipeline(transaction=True) as pipe:
                pipe.xack(lane.normal, GROUP, entry_id)
                pipe.xdel(lane.normal, entry_id)
                pipe.hset(lane.record(did), mapping={"state": "delivered", "attempts": 1})
                pipe.rpush(lane.attempts(did), '{"n":1}')
                await pipe.execute()

        intake = await compare(n, lambda i: _intake(store, batch[i]), bare_intake)
        claim_ack = await compare(n, lambda _: _claim_ack(store), bare_claim_ack)
        return [Row("redis", "intake", *intake), Row("redis", "claim+ack", *claim_ack)]
    finally:
        await store.close()
        await client.aclose()
        sync_client = SyncRedis.from_url(url)
        for ns in (ns_store, ns_bare):
            found = list(sync_client.scan_iter(match=f"{ns}:*", count=1000))
            if found:
                sync_client.delete(*found)
        sync_client.close()


# -- PostgreSQL -------------------------------------------------------------------------------------

async def bench_postgres(n: int, url: str) -> list[Row]:
    """The store against asyncpg running the very statements the store runs (intake's one statement; the claim and
    the settle), on a schema of the same migrations: what the store adds is its records, checks and hashing."""
    store_schema, bare_schema = f"bench_store_{uuid.uuid4().hex[:8]}", f"bench_bare_{uuid.uuid4().hex[:8]}"
    store = PostgresStore(PoolSettings(url=url, schema=store_schema), KEY)
    await store.open()
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2, server_settings={"search_path": bare_schema})
    # As the store's claims and settles: commits that do not wait for the WAL flush.
    lane_pool = await asyncpg.create_pool(url, min_size=1, max_size=2, server_settings={
        "search_path": bare_schema, "synchronous_commit": "off"})
    try:
        async with pool.acquire() as conn:
            await migrate(conn, bare_schema)
        batch, bare_batch = tickets(n, "ps"), tickets(n, "pb")

        async def bare_intake(i: int) -> None:
            t = bare_batch[i]
            now = datetime.now(UTC)
            await pool.fetchval(_INTAKE, t.ticket_id, t.idempotency_key, None, "city-12345-rest", "city-12345",
                                t.source.source_ticket_no, "RECEIVED", t.respondent.uscc, t.respondent.name, "h", None,
                                -1, 0, now, t.model_dump_json(), "application/json", RAW, [uuid.uuid4().hex],
                                ["national"], ["forward"], [None], [BODY], ["application/json"], ["{}"], [1], [None],
                                [None], now, None, [], [], [], [], [], [], now)

        async def bare_claim_ack(_: int) -> None:
            now = datetime.now(UTC)
            [row] = await lane_pool.fetch(_CLAIM, "national", now, now, "w", 1)
            await lane_pool.fetchval(_SETTLE, row["id"], row["lease_token"], "delivered", None, 200, None, now, now,
                                     3.0, "success", '{"code":0}')

        intake = await compare(n, lambda i: _intake(store, batch[i]), bare_intake)
        claim_ack = await compare(n, lambda _: _claim_ack(store), bare_claim_ack)
        return [Row("postgres", "intake", *intake), Row("postgres", "claim+ack", *claim_ack)]
    finally:
        await store.close()
        async with pool.acquire() as conn:
            for schema in (store_schema, bare_schema):
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await lane_pool.close()
        await pool.close()


# -- report -----------------------------------------------------------------------------------------

def table(rows: list[Row]) -> str:
    lines = ["| store | operation | store ops/s | bare client ops/s | ratio (median) | ratio range |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        spread = f"{min(r.ratios):.2f}–{max(r.ratios):.2f}" if r.ratios else ""
        median = statistics.median(r.ratios) if r.ratios else r.ratio
        lines.append(f"| {r.store} | {r.operation} | {r.store_rate:,.0f} | {r.bare_rate:,.0f} | {median:.2f} | "
                     f"{spread} |")
    return "\n".join(lines)


def section(rows: list[Row], n: int, repeat: int, redis_info: dict[str, Any], hop_us: float,
            postgres_version: str) -> str:
    postgres_note = ("The driver, asyncpg, was chosen over psycopg 3 with psycopg_pool by "
                     "`bench/postgres/driver_choice.py` (docs/choosing-a-store.md).")
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    return f"""## Stores

Measured by `bench/store/run.py`: {n} operations per measurement, one at a time (each awaited before
the next, as one worker does), in five alternating rounds of store and bare client so both see the same
machine load; {repeat} repetitions, medians shown. The bare client does the same writes in the same run:
`sqlite3` on the calling thread, `redis-py` asyncio with one MULTI per operation, `asyncpg` running the very
statements the PostgreSQL store runs. Ratio = store ÷ bare (1.0 = no overhead).

{table(rows)}

- Intake = ticket JSON + raw payload + one outbox delivery, atomically, with the idempotency check. The store
  also validates lane names, hashes the phone for its index and, on SQLite, hops to its writer thread (the
  event loop never blocks); on Redis it runs the intake script in the `{{tickets}}` slot and then the relay
  script in the lane's slot (two round trips where the bare MULTI has one).
- SQLite durability: intake (and anything acknowledged to a sender) commits with `synchronous=FULL`;
  claims and settlements with `NORMAL` (a power cut can only cause a re-send). The NORMAL intake row shows
  what FULL costs on this disk.
- Claim+ack = lease one delivery, then record the attempt and mark it delivered (two transactions / round
  trips). The bare Redis variant skips the lease bookkeeping (lease sorted set, state indexes, XAUTOCLAIM
  sweep) that makes crashed work recoverable; that is what the ratio pays for.
- SQLite's claim+ack runs in place on the event loop's own connection (gateway/store/sqlite/loop_writer.py): no
  hop to the store's thread, whose bare round trip measured {hop_us:.0f} µs in this run (intake still makes
  one). The rest of the gap is the typed records (ClaimedDelivery, AttemptReceipt) the store builds and
  checks and bare `sqlite3` never makes, and the claim's check that no earlier delivery of the same ticket to
  the same lane is still outstanding (one ticket's deliveries go in order).
- PostgreSQL: intake is one statement (ticket, raw payload and outbox as data-modifying CTEs; the unique
  constraint on the idempotency key decides a race), a claim one `UPDATE … FOR UPDATE SKIP LOCKED`, a settle one
  statement recording the attempt; each is one round trip on a pooled connection. Intake commits as the
  server's defaults say (fsync on, synchronous_commit on: flushed before the partner hears 202); claims and settles
  run on a second pool with synchronous_commit=off, as SQLite's run at synchronous=NORMAL (a crash of PostgreSQL
  can only cause a re-send), and so do the bare client's. The store's share over bare asyncpg is the phone hash and
  index values, lane-name checks, fresh ids and the typed records it builds. {postgres_note}
- One at a time, as measured here, SQLite's group commit has nothing to group: every write is a transaction
  of its own. With several writers waiting (intake under load) they share one transaction
  and one fsync; `tests/store/test_sqlite_store.py` shows 41 concurrent intakes committed in fewer commits.
- Machine: {platform.platform()}, {os.cpu_count()} CPUs, load average {load} at the end of the run.
  Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}, Redis \
{redis_info.get("redis_version", "?")} on loopback (aof_enabled={redis_info.get("aof_enabled")}), PostgreSQL \
{postgres_version} on loopback (asyncpg {asyncpg.__version__}). With other
  test suites running on the machine the absolute figures are low and noisy; compare the ratios.

Reproduce: `{COMMAND}` (`--n`, `--repeat` for steadier figures; without `--write-docs` it only prints).
"""


def write_docs(text: str) -> None:
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    current = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Benchmarks\n"
    start = current.find("\n## Stores\n")
    if start == -1:
        updated = current.rstrip("\n") + "\n\n" + text
    else:
        end = current.find("\n## ", start + 1)
        updated = current[:start + 1] + text + (current[end:] if end != -1 else "")
    DOCS.write_text(updated, encoding="utf-8")


async def thread_hop_us(n: int = 2000) -> float:
    """The cost of one round trip to the store's thread (an empty job), as the SQLite store makes per call."""
    thread = StoreThread("bench-hop")
    try:
        start = time.perf_counter()
        for _ in range(n):
            await thread.run(int)
        return (time.perf_counter() - start) / n * 1e6
    finally:
        thread.shutdown()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=2000, help="operations per measurement")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions; the table shows medians")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--write-docs", action="store_true", help="replace the Stores section of docs/benchmarks.md")
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory(prefix="bench-store-") as work:
            rows = await bench_sqlite(args.n, Path(work))
        rows += await bench_redis(args.n, args.redis_url)
        rows += await bench_postgres(args.n, args.postgres_url)
        runs.append(rows)
    rows = summarise(runs)
    hop = await thread_hop_us()
    print(table(rows))
    print(f"thread hop: {hop:.0f} µs; load average: {os.getloadavg()}")
    if args.write_docs:
        info_client = SyncRedis.from_url(args.redis_url)
        info = {**info_client.info("server"), **info_client.info("persistence")}
        info_client.close()
        conn = await asyncpg.connect(args.postgres_url)
        postgres_version = str(await conn.fetchval("SHOW server_version"))
        await conn.close()
        write_docs(section(rows, args.n, args.repeat, info, hop, postgres_version))
        print(f"wrote the Stores section of {DOCS}", file=sys.stderr)


if __name__ == "__main__":
    asyncio.run(main())
