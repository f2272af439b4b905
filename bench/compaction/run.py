"""What compaction frees: N tickets stored and delivered (every delivery of the demo routing settled as
delivered, its attempt recorded with a receiver's answer), then the store's size before and after
`Store.compact_delivered` (SQLite: the file after VACUUM; Redis: used_memory).

Run from the repository root:  .venv/bin/python -m bench.compaction.run [--n 20000] [--store both] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import redis

from bench.common import payloads
from bench.common.fill import fill, open_bench_store, settings_for, ticket_maker
from bench.common.procs import gateway_env, machine_load, redis_db
from bench.common.report import machine, write_section
from contracts.delivery import AttemptOutcome, AttemptReceipt
from gateway.store.base import Store

TITLE = "Compaction of delivered deliveries"
COMMAND = ".venv/bin/python -m bench.compaction.run --store both --write-docs"
ANSWER = '{"code":0,"message":"ok","registrationNo":"12315-2024-0000001","receivedAt":"2024-06-11T09:30:00+08:00"}'


async def deliver_all(store: Store) -> int:
    lanes = {lane for lane, stats in (await store.lane_stats()).items() if stats["pending"]}
    delivered = 0
    for lane in sorted(lanes):
        while claims := await store.claim(lane, "bench", 60, limit=200):
            for c in claims:
                await store.settle_delivered(c, AttemptReceipt(
                    delivery_id=c.delivery_id, number=1, started_at=datetime.now(UTC), duration_ms=12.0,
                    status_code=200, error_class=None, outcome=AttemptOutcome.SUCCESS, response_body=ANSWER))
            delivered += len(claims)
    return delivered


async def compact_all(store: Store) -> int:
    total = 0
    while done := await store.compact_delivered(datetime.now(UTC) + timedelta(seconds=1), limit=2000):
        total += done
    return total


def sqlite_size(path: Path) -> int:
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with sqlite3.connect(path, isolation_level=None) as db:
        db.execute("VACUUM")
    return path.stat().st_size


def one_store(kind: str, n: int, work: Path, redis_url: str) -> tuple[int, int, int, int]:
    genv = gateway_env(work / kind, store=kind, redis_url=redis_url, log_level="WARNING")
    settings = settings_for(genv.env)
    maker = ticket_maker(settings, payloads.run_tag())

    async def run() -> int:
        store = open_bench_store(settings)
        await store.open()
        try:
            await fill(store, maker, n)
            return await deliver_all(store)
        finally:
            await store.close()

    async def compact() -> int:
        store = open_bench_store(settings)
        await store.open()
        try:
            return await compact_all(store)
        finally:
            await store.close()

    def size() -> int:
        if kind == "sqlite":
            return sqlite_size(settings.sqlite_path)
        info = redis.Redis.from_url(redis_url).info("memory")
        return int(info["used_memory"])

    delivered = asyncio.run(run())
    before = size()
    compacted = asyncio.run(compact())
    after = size()
    return delivered, compacted, before, after


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="tickets")
    parser.add_argument("--store", choices=("sqlite", "redis", "both"), default="both")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11",
                        help="a database of its own: it must be empty, and is emptied afterwards")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    load_start = machine_load()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-compaction-") as tmp:
        for kind in ("sqlite", "redis") if args.store == "both" else (args.store,):
            if kind == "redis":
                with redis_db(args.redis_url):
                    result = one_store(kind, args.n, Path(tmp), args.redis_url)
            else:
                result = one_store(kind, args.n, Path(tmp), args.redis_url)
            delivered, compacted, before, after = result
            measure = "file after VACUUM" if kind == "sqlite" else "used_memory"
            rows.append(f"| {kind} | {args.n:,} | {delivered:,} | {compacted:,} | {measure} | "
                        f"{before / 2**20:,.1f} MiB | {after / 2**20:,.1f} MiB | {1 - after / before:.0%} |")
            print(rows[-1], flush=True)
    table = "\n".join(["| store | tickets | deliveries delivered | compacted | size measured | before | after | "
                       "freed |", "|---|---:|---:|---:|---|---:|---:|---:|", *rows])
    print(table)
    if args.write_docs:
        write_section(TITLE, f"""## {TITLE}

`bench/compaction/run.py`: {args.n:,} tickets stored as intake leaves them (ticket, raw payload, every
delivery the demo routing makes), each delivery then settled as delivered with a receiver's answer recorded,
and the store measured before and after `Store.compact_delivered` (what `store.compact_delivered_after_days`
and `python main.py deliveries compact` run). What compaction keeps: the ticket, its raw payload, and every
delivery's record and attempts (without the response bodies).

{table}

- Machine: {machine(load_start, machine_load())}.

Reproduce: `{COMMAND}` (`--n` for more tickets).
""")


if __name__ == "__main__":
    main()
