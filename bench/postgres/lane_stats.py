"""Lane counts on a PostgreSQL store holding many deliveries: `lane_stats` (counts kept by the statements that change
deliveries, migration 2) against the query it replaced (counting the table by lane and state), on the same data in
the same run; and what keeping the counts costs the hot path: claim + settle and enqueue through the store with the
counting triggers on and off, in alternating rounds.

Run: .venv/bin/python -m bench.postgres.lane_stats [--deliveries 1000000] [--write-docs]"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg

from bench.common.procs import POSTGRES_URL, machine_load
from bench.common.report import machine, write_section
from bench.postgres.million import percentile
from bench.store.run import receipt
from contracts.delivery import DeliveryKind, OutboxEntry
from gateway.store.postgres import PoolSettings, PostgresStore

TITLE = "PostgreSQL lane counts with many deliveries"
COMMAND = ".venv/bin/python -m bench.postgres.lane_stats --write-docs"
KEY = b"bench-lane-stats-phone-hash-key"
LANES = ("national", "credit", "enforcement")
TRIGGERS = ("deliveries_counted_inserts", "deliveries_counted_updates", "deliveries_counted_deletes")

# What lane_stats ran before migration 2 (one scan of the state index, every row counted).
COUNTING_QUERY = ("SELECT destination, state, count(*) AS n,"
                  " min(created_at) FILTER (WHERE state IN ('pending', 'retrying', 'in_flight')) AS oldest"
                  " FROM deliveries GROUP BY destination, state")

# Delivered deliveries as months of traffic leave them (a body of a forwarded ticket's size), a few waiting.
FILL = """
INSERT INTO deliveries (id, ticket_id, destination, kind, idempotency_key, body, content_type, headers, priority,
                        state, claim_rank, due_at, created_at, attempts, delivered_at)
SELECT 'D' || g, 'T' || g, ($4::text[])[1 + g % 3], 'forward', 'K' || g, convert_to(repeat('x', 600), 'UTF8'),
       'application/json', '{}', 1, CASE WHEN g % $3 = 0 THEN 'pending' ELSE 'delivered' END, 2,
       now() - interval '1 day', now() - interval '90 days' + g * interval '5 seconds', 1, now()
  FROM generate_series($1::bigint, $2::bigint) AS g
"""


async def fill(conn: asyncpg.Connection, count: int, batch: int = 100_000) -> float:
    started = time.perf_counter()
    for first in range(0, count, batch):
        await conn.execute(FILL, first, min(count, first + batch) - 1, 1000, list(LANES))
        print(f"  {min(count, first + batch):,} deliveries", end="\r", flush=True)
    await conn.execute("VACUUM ANALYZE deliveries")  # the counting query at its best: index-only scans
    return time.perf_counter() - started


async def timed_ms(n: int, call: Callable[[], Awaitable[object]]) -> list[float]:
    spent = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        spent.append((time.perf_counter() - start) * 1000)
    return spent


async def trigger_ms(conn: asyncpg.Connection, n: int) -> tuple[list[float], list[float]]:
    """Server-side time of the counting trigger and of the whole statement, from EXPLAIN ANALYZE of a settle-shaped
    UPDATE of one pending delivery to delivered, each in a transaction rolled back."""
    ids = [r["id"] for r in await conn.fetch("SELECT id FROM deliveries WHERE state = 'pending' LIMIT $1", n)]
    trigger, statement = [], []
    for delivery_id in ids:
        undone = conn.transaction()
        await undone.start()
        try:
            plan = "\n".join(r[0] for r in await conn.fetch(
                "EXPLAIN (ANALYZE) UPDATE deliveries SET state = 'delivered' WHERE id = $1", delivery_id))
        finally:
            await undone.rollback()
        spent = re.findall(r"Trigger deliveries_counted_updates: time=([\d.]+)", plan)
        total = re.search(r"Execution Time: ([\d.]+)", plan)
        assert spent and total is not None, plan
        trigger.append(sum(map(float, spent)))
        statement.append(float(total.group(1)))
    return trigger, statement


async def hot_path_round(store: PostgresStore, n: int, tag: str) -> tuple[float, float]:
    """Enqueue n deliveries one ticket each, then claim and settle them 8 at a time: (enqueues/s, deliveries/s)."""
    lane = "hotpath"
    entry = OutboxEntry(destination=lane, kind=DeliveryKind.FORWARD, body=b'{"ticket":"..."}')
    started = time.perf_counter()
    for i in range(n):
        await store.enqueue(f"{tag}-{i}", f"{tag}-k{i}", [entry])
    enqueued = time.perf_counter() - started
    started = time.perf_counter()
    done = 0
    while batch := await store.claim(lane, "bench", 30, limit=8):
        await asyncio.gather(*(store.settle_delivered(c, receipt(c)) for c in batch))
        done += len(batch)
    assert done == n, (done, n)
    return n / enqueued, n / (time.perf_counter() - started)


async def main(args: argparse.Namespace) -> None:
    schema = f"bench_lanes_{uuid.uuid4().hex[:8]}"
    load_start = machine_load()
    store = PostgresStore(PoolSettings(url=args.url, schema=schema), KEY)
    await store.open()
    conn = await asyncpg.connect(args.url, server_settings={"search_path": schema})
    try:
        seconds = await fill(conn, args.deliveries)
        print(f"\nfilled {args.deliveries:,} deliveries in {seconds:.0f} s")
        await store.lane_stats()  # fold the fill's counts
        counted = {(r["destination"], r["state"]): r["n"] for r in await conn.fetch(COUNTING_QUERY)}
        stats = await store.lane_stats()
        kept = {(lane, state): int(n) for lane, c in stats.items() for state, n in c.items()
                if state != "oldest_waiting_age_s" and n}
        assert kept == counted, (kept, counted)

        before: list[float] = []
        after: list[float] = []
        for _ in range(args.rounds):  # alternating, so drift in the machine's load falls on both
            before += await timed_ms(args.reads_before, lambda: conn.fetch(COUNTING_QUERY))
            after += await timed_ms(args.reads_after, store.lane_stats)
        print(f"counting query: p50 {statistics.median(before):.1f} ms; lane_stats: p50 {statistics.median(after):.2f}"
              f" ms, p99 {percentile(after, 0.99):.2f} ms")

        trigger, statement = await trigger_ms(conn, args.explains)
        print(f"settle-shaped UPDATE: trigger p50 {statistics.median(trigger):.3f} ms of"
              f" {statistics.median(statement):.3f} ms")

        on: list[tuple[float, float]] = []
        off: list[tuple[float, float]] = []
        for r in range(args.rounds):
            for enabled in (True, False) if r % 2 == 0 else (False, True):
                verb = "ENABLE" if enabled else "DISABLE"
                for name in TRIGGERS:
                    await conn.execute(f"ALTER TABLE deliveries {verb} TRIGGER {name}")
                rates = await hot_path_round(store, args.hot, f"{verb}-{r}")
                (on if enabled else off).append(rates)
                print(f"  round {r + 1}, counting {'on ' if enabled else 'off'}: enqueue {rates[0]:,.0f}/s,"
                      f" claim+settle {rates[1]:,.0f}/s")
        load_end = machine_load()
    finally:
        await conn.close()
        await store.close()
        drop = await asyncpg.connect(args.url)
        await drop.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await drop.close()
    report = section(args, seconds, before, after, (trigger, statement), on, off, machine(load_start, load_end))
    print(report)
    if args.write_docs:
        write_section(TITLE, report)


def section(args: argparse.Namespace, fill_s: float, before: list[float], after: list[float],
            explained: tuple[list[float], list[float]], on: list[tuple[float, float]], off: list[tuple[float, float]],
            where: str) -> str:
    trigger, statement = (statistics.median(side) for side in explained)
    b50, a50 = statistics.median(before), statistics.median(after)
    enq_on, enq_off = (statistics.median(r[0] for r in side) for side in (on, off))
    del_on, del_off = (statistics.median(r[1] for r in side) for side in (on, off))
    return f"""## {TITLE}

`bench/postgres/lane_stats.py`: a schema made by the store's migrations holding {args.deliveries:,} deliveries on
three lanes (filled in {fill_s:.0f} s with one `INSERT … SELECT` per 100,000, then `VACUUM ANALYZE`; one in 1,000
pending, the rest delivered, bodies of 600 bytes). `lane_stats` (the dashboard, `/metrics` and every alert round call
it) reads the counts that every statement changing deliveries keeps in its own transaction (table `lane_counts`,
statement triggers with transition tables, migration 2), folded before each read, and finds each lane's oldest
waiting delivery by three index probes. The baseline is the query it replaced, counting the table by lane and state
(an index-only scan after the vacuum), run by bare asyncpg on the same data in the same run; {args.rounds} alternating
rounds of {args.reads_before} counting queries and {args.reads_after} `lane_stats` calls. The two answered the same
counts.

| | p50 ms | p99 ms |
|---|---:|---:|
| counting the table (before) | {b50:,.1f} | {percentile(before, 0.99):,.1f} |
| `lane_stats` on kept counts (now) | {a50:,.2f} | {percentile(after, 0.99):,.2f} |
| **now / before (p50)** | **{a50 / b50:.4f}** | |

What keeping the counts costs the hot path, in the server: EXPLAIN ANALYZE of a settle-shaped `UPDATE` of one
pending delivery to delivered ({args.explains} of them, each rolled back) gives the counting trigger
{trigger * 1000:.0f} µs of the statement's {statement * 1000:.0f} µs (medians): about that much per settle, and per
claim (one statement for up to 8 deliveries). Through the store, {args.hot:,} deliveries enqueued (one statement each)
then claimed 8 at a time and settled, on a lane of their own in the same schema, with the counting triggers enabled
and disabled (`ALTER TABLE … DISABLE TRIGGER`) in alternating rounds ({args.rounds} each, medians):

| | enqueues/s | claim + settle deliveries/s |
|---|---:|---:|
| counts kept | {enq_on:,.0f} | {del_on:,.0f} |
| not kept (baseline) | {enq_off:,.0f} | {del_off:,.0f} |
| **kept / not kept** | **{enq_on / enq_off:.2f}** | **{del_on / del_off:.2f}** |

Throughput rounds on a shared machine move with its load much more than by the trigger's share; the explained time
above is the steadier figure.

Each statement appends its change as rows of its own rather than updating one counter per lane: an updated counter
row would make every claim and settle on a lane wait for the one before it to commit. lane_stats and the lease
reaper fold the appended rows (one at a time, under a try-lock), so a read costs what changed since the last fold,
not what the table holds.

Machine: {where}.

Reproduce: `{COMMAND}` (`--deliveries`, `--rounds`, `--hot`, `--explains`).
"""


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--deliveries", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--reads-before", type=int, default=5, help="counting queries per round")
    parser.add_argument("--reads-after", type=int, default=100, help="lane_stats calls per round")
    parser.add_argument("--hot", type=int, default=1000, help="deliveries per hot-path round")
    parser.add_argument("--explains", type=int, default=300, help="settle-shaped UPDATEs explained")
    parser.add_argument("--url", default=POSTGRES_URL)
    parser.add_argument("--write-docs", action="store_true")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(arguments()))
