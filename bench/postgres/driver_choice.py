"""Which PostgreSQL driver the store is built on: asyncpg against psycopg 3 (async, with psycopg_pool), each doing the
same two things the store does most, one at a time: an intake-shaped transaction (three INSERTs) and a claim-shaped
UPDATE … RETURNING. Rounds alternate so both see the same machine load; the schema is made and dropped.

Run: .venv/bin/python -m bench.postgres.driver_choice [--n 1000] [--rounds 3]"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import psycopg
import psycopg_pool

URL = os.environ.get("HIG_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
SCHEMA = f"bench_driver_{uuid.uuid4().hex[:8]}"
DDL = ("CREATE TABLE t (id text PRIMARY KEY, k text UNIQUE NOT NULL, body text NOT NULL)",
       "CREATE TABLE r (id text PRIMARY KEY, body bytea NOT NULL)",
       "CREATE TABLE d (id text PRIMARY KEY, lane text NOT NULL, state text NOT NULL, token text)")
BODY = '{"ticket":"' + "投诉内容" * 200 + '"}'


async def asyncpg_ops(n: int) -> tuple[float, float]:
    pool = await asyncpg.create_pool(URL, min_size=2, max_size=4, server_settings={"search_path": SCHEMA})
    try:
        start = time.perf_counter()
        for _ in range(n):
            i = uuid.uuid4().hex
            async with pool.acquire() as conn, conn.transaction():
                await conn.execute("INSERT INTO t VALUES ($1,$2,$3) ON CONFLICT DO NOTHING", i, i, BODY)
                await conn.execute("INSERT INTO r VALUES ($1,$2)", i, b"raw")
                await conn.execute("INSERT INTO d VALUES ($1,'lane','pending',NULL)", i)
        intake = n / (time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(n):
            await pool.fetchrow(
                "UPDATE d SET state='in_flight', token=$1 WHERE id = (SELECT id FROM d"
                " WHERE lane='lane' AND state='pending' LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id", "tok")
        claim = n / (time.perf_counter() - start)
    finally:
        await pool.close()
    return intake, claim


async def psycopg_ops(n: int) -> tuple[float, float]:
    pool = psycopg_pool.AsyncConnectionPool(URL, min_size=2, max_size=4, open=False,
                                            kwargs={"options": f"-csearch_path={SCHEMA}"})
    await pool.open()
    try:
        start = time.perf_counter()
        for _ in range(n):
            i = uuid.uuid4().hex
            async with pool.connection() as conn, conn.transaction():
                await conn.execute("INSERT INTO t VALUES (%s,%s,%s) ON CONFLICT DO NOTHING", (i, i, BODY))
                await conn.execute("INSERT INTO r VALUES (%s,%s)", (i, b"raw"))
                await conn.execute("INSERT INTO d VALUES (%s,'lane','pending',NULL)", (i,))
        intake = n / (time.perf_counter() - start)
        start = time.perf_counter()
        for _ in range(n):
            async with pool.connection() as conn:
                cur = await conn.execute(
                    "UPDATE d SET state='in_flight', token=%s WHERE id = (SELECT id FROM d"
                    " WHERE lane='lane' AND state='pending' LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id", ("tok",))
                await cur.fetchone()
        claim = n / (time.perf_counter() - start)
    finally:
        await pool.close()
    return intake, claim


async def main(n: int, rounds: int) -> None:
    conn = await asyncpg.connect(URL, server_settings={"search_path": SCHEMA})
    await conn.execute(f"CREATE SCHEMA {SCHEMA}")
    for statement in DDL:
        await conn.execute(statement)
    drivers: dict[str, Callable[[int], Awaitable[tuple[float, float]]]] = {
        "asyncpg": asyncpg_ops, "psycopg": psycopg_ops}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in drivers}
    try:
        for _ in range(rounds):
            for name, ops in drivers.items():
                results[name].append(await ops(n))
    finally:
        await conn.execute(f"DROP SCHEMA {SCHEMA} CASCADE")
        await conn.close()
    print(f"psycopg {psycopg.__version__}, asyncpg {asyncpg.__version__}; {n} ops per round, {rounds} rounds")
    for name, runs in results.items():
        print(f"{name:8} intake txn/s {statistics.median(r[0] for r in runs):8.0f}   "
              f"claim/s {statistics.median(r[1] for r in runs):8.0f}")
    for label, index in (("intake", 0), ("claim", 1)):
        ratio = statistics.median(a[index] / p[index] for a, p in zip(results["asyncpg"], results["psycopg"],
                                                                         strict=True))
        print(f"asyncpg / psycopg, {label}: {ratio:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.rounds))
