"""A PostgreSQL store holding 1,000,000 tickets: size on disk, and searches by phone and by USCC (p50/p99), each
search through the store (`search_tickets`, which parses the tickets it returns) beside bare asyncpg running the same
SELECT in the same run. The tickets (each with its raw payload, as intake keeps them) are bulk-loaded with COPY into
a schema of their own made by the store's migrations, measured, and the schema dropped.

Run: .venv/bin/python -m bench.postgres.million [--tickets 1000000] [--searches 1000] [--write-docs]"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta

import asyncpg

from bench.common.procs import POSTGRES_URL, machine_load
from bench.common.report import machine, write_section
from contracts.base import CHINA_STANDARD_TIME
from contracts.identifiers.uscc import uscc_check_char
from contracts.ticket import Ticket, idempotency_key_of
from gateway.store import TicketQuery
from gateway.store.phone_hash import hash_phone
from gateway.store.postgres import PoolSettings, PostgresStore

TITLE = "PostgreSQL with 1,000,000 tickets"
COMMAND = ".venv/bin/python -m bench.postgres.million --write-docs"
KEY = b"bench-million-phone-hash-key"
RESPONDENTS = 20_000  # about 50 tickets per respondent
PHONES = 500_000  # about 2 tickets per complainant
RAW = json.dumps({"hotlineNo": "KL2024", "appealContent": "消费者反映预付卡商家跑路，要求退还余额。" * 12},
                 ensure_ascii=False).encode()
COLUMNS = ("id", "idempotency_key", "national_registration_no", "adapter_id", "source_system", "source_ticket_no",
           "status", "respondent_uscc", "respondent_name", "complainant_phone_hash", "held", "last_sequence",
           "revision", "created_at", "updated_at", "body")
CREATED_AT, BODY = COLUMNS.index("created_at"), COLUMNS.index("body")


def uscc(n: int) -> str:
    first17 = f"91522601MA{n:07d}"  # 9: enterprise, 1: company, 522601 凯里市
    return first17 + uscc_check_char(first17)


def phone(n: int) -> str:
    return f"+86138{n:08d}"


def template() -> str:
    """A realistic 投诉 as the store keeps it, with markers where each ticket's own values go."""
    at = datetime(2024, 6, 11, 9, 30, tzinfo=CHINA_STANDARD_TIME)
    ticket = Ticket.model_validate({
        "source": {"source_system": "city-12345", "adapter_id": "city-12345-rest", "source_ticket_no": "KL-MARK-NO",
                   "source_received_at": at},
        "classification": {"business_type": "02", "channel": "09", "origin_hotline": "12345"},
        "registration": {"registered_at": at, "request": "退货并退还货款299元",
                         "content": "消费者在凯里市某商行购买电饭煲，使用三天后无法加热，商家以已过七天为由拒绝退货。"
                                    "消费者多次协商未果，请求市场监管部门调解。" * 3},
        "complainant": {"name": "杨某某", "phone": "13800138000", "address": "贵州省黔东南州凯里市北京东路1号"},
        "respondent": {"name": "凯里市某电器商行", "uscc": uscc(0), "operating_address": "凯里市文化北路8号"},
    })
    body = ticket.model_dump_json()
    assert ticket.idempotency_key is not None
    return (body.replace(ticket.ticket_id, "MARK-ID").replace(ticket.idempotency_key, "MARK-KEY")
            .replace("+8613800138000", "MARK-PHONE").replace(uscc(0), "MARK-USCC"))


def rows(count: int, start: datetime) -> Iterator[tuple[object, ...]]:
    body = template()
    for i in range(count):
        ticket_id = uuid.UUID(int=random.getrandbits(128)).hex.upper()[:26]
        number = f"KL-{i:08d}"
        key = idempotency_key_of("city-12345", number, "1")
        p, u = phone(i % PHONES), uscc(i % RESPONDENTS)
        at = start + timedelta(milliseconds=i)
        yield (ticket_id, key, None, "city-12345-rest", "city-12345", number, "RECEIVED", u, "凯里市某电器商行",
               hash_phone(p, KEY, normalized=True), None, -1, 0, at, at,
               body.replace("MARK-ID", ticket_id).replace("KL-MARK-NO", number).replace("MARK-KEY", key)
               .replace("MARK-PHONE", p).replace("MARK-USCC", u))


async def load(conn: asyncpg.Connection, count: int, batch: int = 50_000) -> tuple[float, int]:
    """COPY the tickets and their raw payloads in batches; seconds taken, bytes of data loaded."""
    started = time.perf_counter()
    loaded = done = 0
    source = rows(count, datetime.now(UTC) - timedelta(days=30))
    while True:
        chunk = [r for _, r in zip(range(batch), source, strict=False)]
        if not chunk:
            break
        async with conn.transaction():
            await conn.copy_records_to_table("tickets", records=chunk, columns=COLUMNS)
            await conn.copy_records_to_table(
                "raw_payloads", columns=("ticket_id", "content_type", "body", "received_at"),
                records=[(r[0], "application/json", RAW, r[CREATED_AT]) for r in chunk])
        loaded += sum(len(str(r[BODY]).encode()) + len(RAW) for r in chunk)
        done += len(chunk)
        print(f"  loaded {done:,} tickets", end="\r", flush=True)
    await conn.execute("ANALYZE tickets; ANALYZE raw_payloads")
    return time.perf_counter() - started, loaded


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def timed(n: int, step: Callable[[int], Awaitable[int]]) -> tuple[list[float], int]:
    spent: list[float] = []
    found = 0
    for i in range(n):
        start = time.perf_counter()
        found += await step(i)
        spent.append((time.perf_counter() - start) * 1000)
    return spent, found


async def main(args: argparse.Namespace) -> None:
    schema = f"bench_million_{uuid.uuid4().hex[:8]}"
    load_start = machine_load()
    store = PostgresStore(PoolSettings(url=args.url, schema=schema), KEY)
    await store.open()
    conn = await asyncpg.connect(args.url, server_settings={"search_path": schema})
    try:
        seconds, data_bytes = await load(conn, args.tickets)
        print(f"\nloaded {args.tickets:,} tickets in {seconds:.0f} s")
        sizes = await conn.fetchrow(
            "SELECT pg_total_relation_size('tickets') + pg_total_relation_size('raw_payloads') AS total,"
            " pg_indexes_size('tickets') + pg_indexes_size('raw_payloads') AS indexes,"
            " pg_relation_size('tickets_phone') AS phone_index, pg_relation_size('tickets_uscc') AS uscc_index")
        rng = random.Random(12315)
        phones = [phone(rng.randrange(PHONES)) for _ in range(args.searches)]
        usccs = [uscc(rng.randrange(RESPONDENTS)) for _ in range(args.searches)]
        by_phone = ("SELECT body FROM tickets WHERE complainant_phone_hash = $1"
                    " ORDER BY created_at DESC, seq DESC LIMIT 100")
        by_uscc = "SELECT body FROM tickets WHERE respondent_uscc = $1 ORDER BY created_at DESC, seq DESC LIMIT 100"

        async def store_phone(i: int) -> int:
            return len(await store.search_tickets(TicketQuery(complainant_phone=phones[i])))

        async def bare_phone(i: int) -> int:
            return len(await conn.fetch(by_phone, hash_phone(phones[i], KEY)))

        async def store_uscc(i: int) -> int:
            return len(await store.search_tickets(TicketQuery(respondent_uscc=usccs[i])))

        async def bare_uscc(i: int) -> int:
            return len(await conn.fetch(by_uscc, usccs[i]))

        results = {}
        for name, step in (("phone, store", store_phone), ("phone, bare asyncpg", bare_phone),
                           ("USCC, store", store_uscc), ("USCC, bare asyncpg", bare_uscc)):
            spent, found = await timed(args.searches, step)
            results[name] = (spent, found / args.searches)
            print(f"  {name}: p50 {percentile(spent, 0.5):.2f} ms, p99 {percentile(spent, 0.99):.2f} ms, "
                  f"{found / args.searches:.1f} tickets per search")
        plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {by_uscc}", usccs[0]))
    finally:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.close()
        await store.close()
    mb = 1024 * 1024
    lines = ["| search | tickets found (mean) | p50 ms | p99 ms | p99 ratio store / bare |",
             "|---|---:|---:|---:|---:|"]
    for what in ("phone", "USCC"):
        store_ms, bare_ms = results[f"{what}, store"][0], results[f"{what}, bare asyncpg"][0]
        for side in ("store", "bare asyncpg"):
            spent, found = results[f"{what}, {side}"]
            ratio = f"**{percentile(store_ms, 0.99) / percentile(bare_ms, 0.99):.2f}**" if side == "store" else ""
            lines.append(f"| by {what}, {side} | {found:.1f} | {percentile(spent, 0.5):.2f} | "
                         f"{percentile(spent, 0.99):.2f} | {ratio} |")
    table = "\n".join(lines)
    print(table)
    print(plan)
    if args.write_docs:
        write_section(TITLE, f"""## {TITLE}

`bench/postgres/million.py`: {args.tickets:,} tickets (a 投诉 of the city 12345 line,
{data_bytes / args.tickets / 1024:.1f} KB of ticket JSON and raw payload each; {RESPONDENTS:,} respondents, about
{args.tickets // RESPONDENTS} tickets each; {PHONES:,} complainants' phones, about {args.tickets // PHONES} tickets
each) bulk-loaded with COPY into a schema made by the store's migrations (every index in place while loading),
in {seconds:.0f} s. Then {args.searches:,} searches by
phone and {args.searches:,} by USCC, one at a time: through the store (`search_tickets`: the phone's keyed hash, the
indexed SELECT, each ticket parsed back into a `Ticket`) and, in the same run, bare asyncpg running the same SELECT
(rows not parsed). The schema is dropped afterwards.

| size on disk | MB | ratio to the data loaded |
|---|---:|---:|
| data loaded (ticket JSON + raw payloads) | {data_bytes / mb:,.0f} | 1.00 |
| tickets and raw payloads, with indexes and TOAST | {sizes["total"] / mb:,.0f} | {sizes["total"] / data_bytes:.2f} |
| of which indexes | {sizes["indexes"] / mb:,.0f} | |
| phone-hash index / USCC index | {sizes["phone_index"] / mb:,.0f} / {sizes["uscc_index"] / mb:,.0f} | |

{table}

- Both searches are one index scan (`tickets_phone`, `tickets_uscc`: the value, then newest first), so their cost
  follows the number of tickets returned, not the {args.tickets:,} stored. The store's share is parsing each
  ticket it returns back into a `Ticket` (validated as the contract says): a respondent's
  ~{args.tickets // RESPONDENTS} tickets make the USCC search cost more than a complainant's ~{args.tickets // PHONES}.
  PostgreSQL compresses the ticket JSON (TOAST) where it is long enough, which keeps the table near the size of
  the data; the phone index holds 64-character keyed hashes, never the number.
- Machine: {machine(load_start, machine_load())}; PostgreSQL 15 with Debian's default settings (shared_buffers 128 MB).

Reproduce: `{COMMAND}` (`--tickets`, `--searches`; takes a few minutes and about 4 GB of disk while it runs).
""")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--searches", type=int, default=1000)
    parser.add_argument("--url", default=POSTGRES_URL)
    parser.add_argument("--write-docs", action="store_true")
    asyncio.run(main(parser.parse_args()))
