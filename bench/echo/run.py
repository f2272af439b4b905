"""What keeping the sender's echo costs a status callback: enqueue, and claim + settle delivered, of callbacks that
report a status (the store keeps the echo) against the same callbacks without (it does not), in alternating rounds
on one store, SQLite and Redis.

Run from the repository root:  .venv/bin/python -m bench.echo.run [--n 2000] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from contracts.delivery import AttemptOutcome, AttemptReceipt, DeliveryKind, OutboxEntry, ReportedStatus
from gateway.store.base import Store
from gateway.store.redis import RedisStore
from gateway.store.sqlite import SqliteStore

KEY = b"bench-phone-hash-key"
BODY = '{"hotlineNo":"KL2024-000001","handleStatus":"1","handleOpinion":"予以受理"}'.encode()


def callback(lane: str, i: int, echo: bool) -> OutboxEntry:
    return OutboxEntry(destination=lane, kind=DeliveryKind.CALLBACK, body=BODY, idempotency_key=f"bench-{i}:1",
                       reports=ReportedStatus(sequence=1, status="ACCEPTED") if echo else None)


async def one_round(store: Store, lane: str, start: int, n: int, echo: bool) -> tuple[float, float, float, float]:
    """Wall and CPU seconds (this process, every thread) to enqueue n callbacks (one ticket each, one at a time),
    then wall and CPU seconds to claim and settle them all."""
    wall, cpu = time.perf_counter(), time.process_time()
    for i in range(start, start + n):
        await store.enqueue(f"ticket-{i}", f"key-{i}", [callback(lane, i, echo)])
    enqueued_wall, enqueued_cpu = time.perf_counter(), time.process_time()
    settled = 0
    while settled < n:
        for claim in await store.claim(lane, "bench", 30, limit=1):
            await store.settle_delivered(claim, AttemptReceipt(
                delivery_id=claim.delivery_id, number=1, started_at=datetime.now(UTC), duration_ms=3.0,
                status_code=200, outcome=AttemptOutcome.SUCCESS, response_body='{"code":0}'))
            settled += 1
    return (enqueued_wall - wall, enqueued_cpu - cpu, time.perf_counter() - enqueued_wall,
            time.process_time() - enqueued_cpu)


Sample = tuple[float, float, float, float]  # µs per callback: wall with echo, wall without, CPU with, CPU without


async def measure(store: Store, n: int, rounds: int) -> dict[str, list[Sample]]:
    """Per operation and round, both sides measured in the same round (alternating which goes first)."""
    found: dict[str, list[Sample]] = {"enqueue": [], "claim + settle delivered": []}
    next_i = 0
    for r in range(rounds):
        lane = f"callback:bench-{uuid.uuid4().hex[:6]}"
        spent: dict[bool, tuple[float, float, float, float]] = {}
        for echo in ((True, False) if r % 2 == 0 else (False, True)):
            spent[echo] = await one_round(store, lane, next_i, n, echo)
            next_i += n
        for k, operation in enumerate(found):
            w, c = 2 * k, 2 * k + 1
            found[operation].append(tuple(x / n * 1e6 for x in (  # type: ignore[misc]
                spent[True][w], spent[False][w], spent[True][c], spent[False][c])))
    return found


async def main_async(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        stores: dict[str, Store] = {
            "sqlite": SqliteStore(Path(tmp) / "bench.db", KEY),
            "redis": RedisStore(args.redis_url, KEY, namespace=f"bench-echo-{uuid.uuid4().hex[:8]}"),
        }
        print("| store | operation | wall µs per callback, with echo / without | wall ratio with / without (range) |"
              " CPU µs in the gateway process, with / without | CPU ratio with / without (range) |")
        print("|---|---|---:|---:|---:|---:|")
        for name, store in stores.items():
            async with store:
                try:
                    found = await measure(store, args.n, args.rounds)
                finally:
                    if isinstance(store, RedisStore):
                        keys = [k async for k in store.redis.scan_iter(match=store.keys.pattern, count=1000)]
                        if keys:
                            await store.redis.delete(*keys)
            for operation, samples in found.items():
                med = [statistics.median(s[i] for s in samples) for i in range(4)]
                wall = [s[0] / s[1] for s in samples]
                cpu = [s[2] / s[3] for s in samples]
                print(f"| {name} | {operation} | {med[0]:.0f} / {med[1]:.0f} | **{statistics.median(wall):.2f}** "
                      f"({min(wall):.2f}–{max(wall):.2f}) | {med[2]:.0f} / {med[3]:.0f} | "
                      f"**{statistics.median(cpu):.2f}** ({min(cpu):.2f}–{max(cpu):.2f}) |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="callbacks per side per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
