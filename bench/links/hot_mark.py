"""Duplicate-link look-up for a mark with thousands of tickets (a professional complainant, 职业索赔人, filing about
one business again and again), against an ordinary mark's look-up in the same store: the ratio says whether a
look-up's cost grows with the number of tickets one mark has.

Each store (SQLite, Redis) is filled through its own intake write as `bench.links.lookup` fills it: `--n` ordinary
tickets over a year and `--hot` tickets of one complainant about one respondent within one month. Then, alternating,
look-ups as intake makes them (`Store.find_link_candidates`, ±30 days, at most the configured candidates) for a new
ticket of the hot pair and for a new ticket of an ordinary known pair (the baseline). Both find candidates; the hot
one finds the limit.

Run from the repository root:  .venv/bin/python -m bench.links.hot_mark [--n 20000] [--hot 5000] [--store both]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from bench.common.fill import settings_for, ticket_maker
from bench.common.procs import machine_load
from bench.links.lookup import (
    KEY,
    Lookup,
    Population,
    Tickets,
    fill_redis,
    fill_sqlite,
    private_redis,
)
from gateway.config import LinkSettings
from gateway.store.base import LinkQuery
from gateway.store.redis import RedisStore
from gateway.store.sqlite import SqliteStore
from gateway.tickets.links import link_marks

HOT_COMPLAINANT = 599_999
HOT_RESPONDENT = 7


@dataclass(frozen=True)
class WithHotPair(Population):
    """The ordinary population, and from ticket `n - hot` on one complainant about one respondent, all received
    within the month before the year's last day."""

    hot: int = 0

    def pair(self, i: int) -> tuple[int, int]:
        return (HOT_COMPLAINANT, HOT_RESPONDENT) if i >= self.n - self.hot else super().pair(i)

    def received(self, i: int) -> datetime:
        if i >= self.n - self.hot:
            return super().received(self.n) - timedelta(days=30) * ((self.n - i) / self.hot)
        return super().received(i)


async def measure(name: str, lookup: Lookup, tickets: Tickets, population: WithHotPair,
                  lookups: int) -> tuple[list[float], list[float], float, float]:
    """(hot ms, ordinary ms, candidates per hot look-up, per ordinary look-up), the two kinds alternating."""
    window = timedelta(days=LinkSettings().window_days)
    hot_ms: list[float] = []
    plain_ms: list[float] = []
    found = {"hot": 0, "plain": 0}
    ordinary = population.n - population.hot
    for k in range(lookups):
        for kind, i in (("hot", population.n - 1 - k % population.hot), ("plain", ordinary // 2 + k % 1000)):
            probe = tickets.ticket(i, tag="P")
            marks = tuple(link_marks(probe))
            at = probe.source.source_received_at
            began = time.perf_counter()
            candidates = await lookup(LinkQuery(marks, at - window, at + window))
            (hot_ms if kind == "hot" else plain_ms).append((time.perf_counter() - began) * 1000)
            found[kind] += len(candidates)
    print(f"  {name}: hot p50 {statistics.median(hot_ms):.3f} ms, ordinary p50 {statistics.median(plain_ms):.3f} ms,"
          f" hot / ordinary {statistics.median(hot_ms) / statistics.median(plain_ms):.2f}; candidates per look-up"
          f" {found['hot'] / lookups:.1f} / {found['plain'] / lookups:.1f}", flush=True)
    return hot_ms, plain_ms, found["hot"] / lookups, found["plain"] / lookups


async def on_sqlite(tickets: Tickets, population: WithHotPair, lookups: int) -> None:
    folder = Path(tempfile.mkdtemp(prefix="bench-hot-mark-"))
    try:
        path = folder / "gateway.db"
        store = SqliteStore(path, KEY)
        await store.open()
        await store.close()
        fill_sqlite(path, tickets, population.n)
        store = SqliteStore(path, KEY)
        await store.open()
        try:
            await measure("sqlite", store.find_link_candidates, tickets, population, lookups)
        finally:
            await store.close()
    finally:
        shutil.rmtree(folder)


async def on_redis(tickets: Tickets, population: WithHotPair, lookups: int, url: str) -> None:
    store = RedisStore(url, KEY, namespace="bench-hot-mark")
    await store.open()
    try:
        await fill_redis(store, tickets, population.n)
        await measure("redis", store.find_link_candidates, tickets, population, lookups)
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="tickets stored, the hot pair's included")
    parser.add_argument("--hot", type=int, default=5_000, help="tickets of the one complainant about one respondent")
    parser.add_argument("--lookups", type=int, default=1000, help="look-ups measured of each kind")
    parser.add_argument("--store", choices=("sqlite", "redis", "both"), default="both")
    args = parser.parse_args()
    settings = settings_for({**os.environ, "HIG_CREDIT_LOOKUP__URL": ""})
    population = WithHotPair(args.n, hot=args.hot)
    tickets = Tickets(population, ticket_maker(settings, "L").template)
    print(f"load {machine_load()}", flush=True)
    if args.store in ("sqlite", "both"):
        asyncio.run(on_sqlite(tickets, population, args.lookups))
    if args.store in ("redis", "both"):
        with private_redis() as url:
            asyncio.run(on_redis(tickets, population, args.lookups, url))
    print(f"load {machine_load()}", flush=True)


if __name__ == "__main__":
    main()
