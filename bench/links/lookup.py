"""Duplicate-link look-up latency with a million stored tickets, on SQLite and on Redis.

Each store is filled in bulk through its own intake write (SQLite: the store's `tickets.intake` on one connection,
10,000 tickets a transaction; Redis: the store's INTAKE script, pipelined), each ticket indexed under its link
marks as intake indexes it. The tickets are the city fixture (a 投诉, ~3 KB of JSON with its deadlines) spread over
the SQLite store's horizon (twice the link window, 60 days: all of them in its memory, the most it holds), 600,000
complainants (phone) and 50,000 respondents (USCC, name and region); one in twenty is a second ticket of an earlier
complainant about the same respondent a few days later, as duplicates arrive. The SQLite store measured is a new
one on the filled file: it reads the link log into memory as a gateway does at start (time and memory printed). Then
one look-up at a time, as intake makes it (`Store.find_link_candidates` with a new ticket's marks and a ±30-day
window; the candidates' bodies read and parsed), for new tickets of known pairs (hits) and of new complainants
(misses). The store is deleted afterwards: the SQLite file with its folder, the Redis server this run started.

Run from the repository root:  .venv/bin/python -m bench.links.lookup [--n 1000000] [--store both] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import hashlib
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator, Sized
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from ulid import ULID

from bench.common.fill import settings_for, ticket_maker
from bench.common.procs import free_port, machine_load, rss_mb
from bench.common.report import machine
from contracts.base import CHINA_STANDARD_TIME
from contracts.identifiers.uscc import org_code_check_char, uscc_check_char
from contracts.ticket import Ticket, idempotency_key_of
from gateway.config import LinkSettings
from gateway.store.base import LinkQuery
from gateway.store.redis import RedisStore
from gateway.store.redis import lua as redis_lua
from gateway.store.sqlite import SqliteStore
from gateway.store.sqlite import tickets as sqlite_tickets
from gateway.store.sqlite.link_log import LinkLog, horizon_of
from gateway.store.ticket_index import link_numbers
from gateway.tickets.links import link_marks

KEY = b"bench-links-phone-hash-key"
RAW = b'{"hotlineNo":"KL12345-BENCH"}'
COMPLAINANTS = 600_000
RESPONDENTS = 50_000
DUPLICATE_EVERY = 20
SPREAD = horizon_of(LinkSettings().window_days)  # every ticket within what the SQLite store keeps in memory
START = datetime(2025, 1, 1, 8, 0, tzinfo=CHINA_STANDARD_TIME)
COMMAND = ".venv/bin/python -m bench.links.lookup --store both --write-docs"


def _pick(i: int, salt: str, size: int) -> int:
    return int.from_bytes(hashlib.blake2b(f"{salt}{i}".encode(), digest_size=8).digest(), "big") % size


@functools.lru_cache(maxsize=RESPONDENTS)
def uscc(n: int) -> str:
    org = f"{n:08d}"
    first17 = f"91522601{org}{org_code_check_char(org)}"
    return first17 + uscc_check_char(first17)


@dataclass(frozen=True)
class Population:
    """Who complains about whom in ticket i, and when it was received."""

    n: int

    def pair(self, i: int) -> tuple[int, int]:
        if i % DUPLICATE_EVERY == DUPLICATE_EVERY - 1 and i >= 3:
            return self.pair(i - 3)  # the same consumer again about the same shop: a duplicate on another line
        return _pick(i, "c", COMPLAINANTS), _pick(i, "r", RESPONDENTS)

    def received(self, i: int) -> datetime:
        return START + SPREAD * (i / self.n)


class Tickets:
    """Ticket i of the population: the prepared city fixture under its number, people and time."""

    def __init__(self, population: Population, template: Ticket) -> None:
        self.population = population
        self.template = template

    def ticket(self, i: int, *, complainant: int | None = None, tag: str = "L") -> Ticket:
        c, r = self.population.pair(i)
        c = c if complainant is None else complainant
        number = f"KL12345-{tag}-{i:09d}"
        at = self.population.received(i)
        t = self.template
        source = t.source.model_copy(update={"source_ticket_no": number, "source_received_at": at})
        return t.model_copy(update={
            "ticket_id": str(ULID()), "idempotency_key": idempotency_key_of(source.source_system, number, "1"),
            "source": source,
            "complainant": t.complainant.model_copy(update={"phone": f"+86139{c:08d}", "id_number": None,
                                                            "id_type": None}),
            "respondent": t.respondent.model_copy(update={"uscc": uscc(r), "name": f"凯里市第{r}号商店"}),
        })


def fill_sqlite(path: Path, tickets: Tickets, n: int) -> float:
    began = time.perf_counter()
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    links = LinkLog(SPREAD)  # the fill's own: the store measured reads the file afresh
    for start in range(0, n, 10_000):
        db.execute("BEGIN")
        for i in range(start, min(n, start + 10_000)):
            ticket = tickets.ticket(i)
            sqlite_tickets.intake(ticket, ticket.model_dump_json(), RAW, "application/json", [], KEY, links, db,
                                  link_keys=link_numbers(link_marks(ticket), KEY))
        db.execute("COMMIT")
        if (start // 10_000) % 10 == 9:
            print(f"  sqlite: {start + 10_000:,} stored, {time.perf_counter() - began:.0f} s", flush=True)
    db.close()
    return time.perf_counter() - began


async def fill_redis(store: RedisStore, tickets: Tickets, n: int) -> float:
    began = time.perf_counter()
    batch = 500
    for start in range(0, n, batch):
        calls = []
        for i in range(start, min(n, start + batch)):
            ticket = tickets.ticket(i)
            calls.append(store._intake_call(ticket, RAW, "application/json", [0], 0, ticket_json=None,
                                            link_marks=link_marks(ticket)))
        replies = await store._eval_many(redis_lua.INTAKE, calls)
        failed = [r for r in replies if isinstance(r, Exception)]
        if failed:
            raise SystemExit(f"the fill failed: {failed[0]}")
        if (start // batch) % 200 == 199:
            print(f"  redis: {start + batch:,} stored, {time.perf_counter() - began:.0f} s", flush=True)
    return time.perf_counter() - began


@dataclass
class Latencies:
    store: str
    kind: str
    ms: list[float]
    found: int

    @property
    def p50(self) -> float:
        return statistics.median(self.ms)

    @property
    def p99(self) -> float:
        return statistics.quantiles(self.ms, n=100)[98]


Lookup = Callable[[LinkQuery], Awaitable[Sized]]


async def measure(name: str, lookup: Lookup, tickets: Tickets, n: int, lookups: int) -> list[Latencies]:
    """`lookups` look-ups of each kind, one at a time: hits, then misses."""
    window = timedelta(days=LinkSettings().window_days)
    results = []
    for kind in ("hit", "miss"):
        ms: list[float] = []
        found = 0
        for k in range(lookups):
            i = _pick(k, kind, n - 10) + 5
            # A new ticket of ticket i's pair received just after it (hit), or of a complainant never seen (miss).
            probe = tickets.ticket(i, tag="P", complainant=None if kind == "hit" else COMPLAINANTS + k)
            at = probe.source.source_received_at
            began = time.perf_counter()
            candidates = await lookup(LinkQuery(tuple(link_marks(probe)), at - window, at + window))
            ms.append((time.perf_counter() - began) * 1000)
            found += len(candidates)
        results.append(Latencies(name, kind, ms, found))
        print(f"  {name} {kind}: p50 {results[-1].p50:.2f} ms, p99 {results[-1].p99:.2f} ms, "
              f"{found / lookups:.2f} candidates per look-up", flush=True)
    return results


@contextmanager
def private_redis() -> Iterator[str]:
    """A Redis server of this run's own (no persistence), stopped afterwards: a million tickets never sit in the
    shared Redis's memory."""
    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--protected-mode", "yes"], stdout=subprocess.DEVNULL)
    try:
        import redis

        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis(port=port).ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)


async def run_sqlite(tickets: Tickets, n: int, lookups: int,
                     kept: Path | None = None) -> tuple[float, int, list[Latencies], str]:
    """Fill a new file and measure; with `kept`, fill that file only if it does not exist yet, and keep it (the
    fill can run at any load, the look-ups on a quiet machine later). The last item: what reading the link log into
    memory took."""
    folder = Path(tempfile.mkdtemp(prefix="bench-links-")) if kept is None else kept.parent
    try:
        path = folder / "gateway.db" if kept is None else kept
        seconds = float("nan")
        if not path.exists():
            store = SqliteStore(path, KEY)
            await store.open()  # the schema, as a gateway makes it
            await store.close()
            seconds = fill_sqlite(path, tickets, n)
        if lookups == 0:
            return seconds, path.stat().st_size, [], ""
        size = path.stat().st_size
        store = SqliteStore(path, KEY)
        await store.open()
        try:
            rss = rss_mb(os.getpid())
            began = time.perf_counter()
            await store.warm_up()  # reads the link log, as a serving gateway does at start
            memory = (f"the link log read in {time.perf_counter() - began:.1f} s, "
                      f"+{rss_mb(os.getpid()) - rss:,.0f} MiB resident")
            print(f"  sqlite memory: {memory}", flush=True)
            return seconds, size, await measure("sqlite", store.find_link_candidates, tickets, n, lookups), memory
        finally:
            await store.close()
    finally:
        if kept is None:
            shutil.rmtree(folder)


async def run_redis(tickets: Tickets, n: int, lookups: int,
                    url: str) -> tuple[float, int, list[Latencies], str]:
    store = RedisStore(url, KEY, namespace="bench-links")
    await store.open()
    try:
        seconds = await fill_redis(store, tickets, n)
        used = int((await store.redis.info("memory"))["used_memory"])
        return seconds, used, await measure("redis", store.find_link_candidates, tickets, n, lookups), ""
    finally:
        await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000, help="tickets stored before the look-ups")
    parser.add_argument("--lookups", type=int, default=2000, help="look-ups measured per kind (hit, miss)")
    parser.add_argument("--store", choices=("sqlite", "redis", "both"), default="both")
    parser.add_argument("--write-docs", action="store_true")
    parser.add_argument("--keep-db", type=Path, metavar="FILE",
                        help="SQLite: fill FILE if it does not exist (with --n tickets) and keep it; measure on it. "
                             "With --lookups 0 only the fill runs")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # a stopped run still stops its Redis and deletes its file
    settings = settings_for({**os.environ, "HIG_CREDIT_LOOKUP__URL": ""})
    maker = ticket_maker(settings, "L")
    tickets = Tickets(Population(args.n), maker.template)
    load_start = machine_load()
    rows: list[tuple[str, float, int, list[Latencies], str]] = []
    if args.store in ("sqlite", "both"):
        rows.append(("sqlite", *asyncio.run(run_sqlite(tickets, args.n, args.lookups, args.keep_db))))
    if args.store in ("redis", "both"):
        with private_redis() as url:
            rows.append(("redis", *asyncio.run(run_redis(tickets, args.n, args.lookups, url))))
    load_end = machine_load()
    for name, seconds, size, _, _ in rows:
        print(f"{name}: filled {args.n:,} in {seconds:.0f} s ({args.n / seconds:,.0f}/s), {size / 2**20:,.0f} MiB")
    if args.write_docs:
        from bench.links.report import write_lookup_section

        write_lookup_section(args.n, args.lookups, rows, machine(load_start, load_end), COMMAND)


if __name__ == "__main__":
    main()
