"""End-to-end delivery: the gateway's delivery engine draining queued tickets to a local receiver, against a bare
httpx client posting the same bodies to the same receiver.

Each round, for each store: N tickets are queued in a fresh store (Store.intake, as intake leaves them),
a gateway process starts with its delivery workers on and the national lane pointed at the receiver
(simulators/receiver.py, its own process, answering 200 at once), and the time from the receiver's first
to its N-th request is taken. Then this process posts the same N bodies with the same headers
(Content-Type, Idempotency-Key, Authorization) through one httpx.AsyncClient with as many requests in
flight as the lane's concurrency, to the same receiver. Target: the gateway at least 0.7 of the bare client.

Run from the repository root:  .venv/bin/python -m bench.delivery.run [--quick] [--store all] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.common import payloads
from bench.common.fill import TicketMaker, fill, open_bench_store, settings_for, ticket_maker
from bench.common.procs import (
    STORE_CHOICES,
    Server,
    cpu_seconds,
    delivery_file,
    gateway_env,
    machine_load,
    national_token,
    receiver_reset,
    receiver_stats,
    start_gateway,
    start_receiver,
    store_backend,
    stores_of,
)
from bench.common.report import machine, write_section
from gateway.config import GatewaySettings

TITLE = "Delivery to a local receiver"
TARGET = 0.7
COMMAND = ".venv/bin/python -m bench.delivery.run --store all --n 2000 --rounds 3 --write-docs"
NATIONAL_PATH = "/api/v1/tickets"


@dataclass
class Round:
    gateway_rate: float
    bare_rate: float
    gateway_cpu_ms: float  # gateway process CPU per delivery
    bare_cpu_ms: float  # this process's CPU per post
    duplicates: int  # keys the receiver saw more than once in the gateway round

    @property
    def ratio(self) -> float:
        return self.gateway_rate / self.bare_rate


@dataclass
class StoreResult:
    store: str
    n: int
    concurrency: int
    rounds: list[Round] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return float(statistics.median(getattr(r, attr) for r in self.rounds))


def wait_for(receiver: Server, n: int, gateway: Server, timeout: float) -> tuple[float, float, float]:
    """Poll the receiver until it has n requests: (seconds from its first to its n-th, received at the first
    poll that saw any, gateway CPU seconds over that span)."""
    first_at = first_count = cpu_at_first = 0.0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        total = int(receiver_stats(receiver)["total"])
        now = time.perf_counter()
        if total and not first_at:
            first_at, first_count, cpu_at_first = now, total, cpu_seconds(gateway.pid)
        if total >= n:
            return now - first_at, first_count, cpu_seconds(gateway.pid) - cpu_at_first
        time.sleep(0.05)
    raise SystemExit(f"the gateway did not deliver {n} tickets within {timeout:.0f} s; see {gateway.log}")


async def bare_posts(url: str, bodies: list[tuple[bytes, str]], token: str, concurrency: int) -> float:
    """POST every body with `concurrency` in flight through one httpx client; the seconds it took."""
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10.0, trust_env=False, follow_redirects=False) as client:
        queue = iter(bodies)

        async def worker() -> None:
            for body, key in queue:
                response = await client.post(url, content=body, headers={
                    "Content-Type": "application/json", "Idempotency-Key": key,
                    "Authorization": f"Bearer {token}"})
                response.raise_for_status()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - started


def one_store(store: str, args: argparse.Namespace, work: Path, receiver: Server) -> StoreResult:
    result = StoreResult(store, args.n, args.concurrency)
    for r in range(args.rounds):
        with store_backend(store, redis_url=args.redis_url) as store_env:
            result.rounds.append(one_round(store, r, args, work, receiver, store_env))
    return result


def one_round(store: str, r: int, args: argparse.Namespace, work: Path, receiver: Server,
              store_env: dict[str, str]) -> Round:
    data = work / f"{store}-{r}"
    deliveries = delivery_file(work / f"delivery-{store}-{r}.yaml", receiver.url + NATIONAL_PATH,
                               concurrency=args.concurrency)
    genv = gateway_env(data, store=store, redis_url=args.redis_url, workers=True, delivery_file=deliveries,
                       log_level="WARNING", store_env=store_env)
    settings = settings_for(genv.env)
    maker = ticket_maker(settings, f"{store[0].upper()}{r}{payloads.run_tag()}")

    async def queue_tickets(settings: GatewaySettings = settings, maker: TicketMaker = maker
                            ) -> list[tuple[bytes, str]]:
        bench_store = open_bench_store(settings)
        await bench_store.open()
        try:
            await fill(bench_store, maker, args.n)
        finally:
            await bench_store.close()
        made = [maker.ticket(10**8 + i) for i in range(args.n)]  # the same shape of body, other keys
        return [(t.model_dump_json().encode(), t.idempotency_key or "") for t in made]

    bodies = asyncio.run(queue_tickets())
    receiver_reset(receiver)
    gateway = start_gateway(genv, work, name=f"gateway-{store}-{r}")
    try:
        seconds, first, cpu = wait_for(receiver, args.n, gateway, timeout=args.n / 5 + 60)
    finally:
        gateway.stop()
    stats = receiver_stats(receiver)
    gateway_rate = (args.n - first) / seconds
    receiver_reset(receiver)
    token = national_token(genv)
    cpu_before = time.process_time()
    bare_seconds = asyncio.run(bare_posts(receiver.url + NATIONAL_PATH, bodies, token, args.concurrency))
    bare_cpu = time.process_time() - cpu_before
    one = Round(gateway_rate, args.n / bare_seconds, cpu / max(args.n - first, 1) * 1000,
                bare_cpu / args.n * 1000, int(stats["keys_received_twice_or_more"]))
    print(f"  {store} round {r + 1}: gateway {one.gateway_rate:7,.0f}/s ({one.gateway_cpu_ms:.2f} ms CPU each), "
          f"bare httpx {one.bare_rate:7,.0f}/s ({one.bare_cpu_ms:.2f} ms CPU each), ratio {one.ratio:.2f}, "
          f"duplicates {one.duplicates}", flush=True)
    return one


def table(results: list[StoreResult]) -> str:
    lines = ["| store | gateway deliveries/s | bare httpx posts/s | ratio (median) | ratio range | "
             "CPU ms per delivery: gateway / bare | duplicates at the receiver |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for res in results:
        ratios = [r.ratio for r in res.rounds]
        lines.append(f"| {res.store} | {res.median('gateway_rate'):,.0f} | {res.median('bare_rate'):,.0f} | "
                     f"**{statistics.median(ratios):.2f}** | {min(ratios):.2f}–{max(ratios):.2f} | "
                     f"{res.median('gateway_cpu_ms'):.2f} / {res.median('bare_cpu_ms'):.2f} | "
                     f"{sum(r.duplicates for r in res.rounds)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1500, help="tickets queued per round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=8, help="the national lane's (and the bare client's)")
    parser.add_argument("--store", choices=STORE_CHOICES, default="sqlite",
                        help='"both": SQLite and Redis; "all": and PostgreSQL')
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11",
                        help="a database of its own: it must be empty, and is emptied afterwards")
    parser.add_argument("--quick", action="store_true", help="CI-sized: 1 round of 500 tickets")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.n, args.rounds = 500, 1
    load_start = machine_load()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as tmp:
        work = Path(tmp)
        receiver = start_receiver(work)
        try:
            for store in stores_of(args.store):
                results.append(one_store(store, args, work, receiver))
        finally:
            receiver.stop()
    print(table(results))
    if args.write_docs:
        write_section(TITLE, f"""## {TITLE}

`bench/delivery/run.py`: {args.n} tickets queued in a fresh store per round (as intake leaves them: ticket, raw
payload, national delivery), then a gateway process (`python main.py serve`, delivery workers on, the
national lane pointed at `simulators/receiver.py` in its own process, lane concurrency {args.concurrency}) drains
them; the rate is the receiver's, from its first request to its {args.n}-th. Against it, in the same round, a
bare `httpx.AsyncClient` in the benchmark process posts the same bodies with the same headers to the same
receiver, {args.concurrency} in flight. {args.rounds} rounds per store; medians shown. Target ≥ {TARGET}.

{table(results)}

- A gateway delivery is: claim (lease) from the store, POST, read the answer, settle (attempt recorded,
  state delivered), plus the national lane's look at the answer for a registration number (the receiver
  gives none, so no ticket write follows; against the real platform each success also updates the ticket).
- A lane sends through `concurrency` long-lived workers that take deliveries claimed a little ahead of them
  (about 0.1 s of sends at the lane's recent rate), as the bare client's own workers take the next body. Until
  2026-11-29 each delivery was a task of its own, claimed when a slot freed: the pool's connections then sat
  idle between sends, and httpcore checks every idle connection on every request through anyio's attribute
  table (encode/httpcore#928), so each send cost about half as much again as the bare client's. The
  senders' transport now checks idle connections with a direct poll of the socket
  (`adapters/wire/transport.py`). Ratios before that change: 0.30 (SQLite) and 0.37 (Redis).
- A send is one request on httpx's transport, called directly (`adapters/wire/senders.py`): a delivery
  needs none of the client's layers (redirects are not followed, credentials are headers, no cookie jar),
  and they were about a fifth of a send's CPU. So a gateway send costs less than the bare client's
  `client.post`; the claim and the settle (a Lua script each on Redis, its replies parsed by hiredis) take
  that back. A settle runs in a task of its own while the worker sends the next delivery.
- On SQLite, claims and settles are written in place by the event loop on a connection of its own
  (`gateway/store/sqlite/loop_writer.py`), at synchronous=NORMAL and never waiting for the write lock. Until
  2026-11-29 (third session) they went to the store's thread, whose interpreter lock the busy event loop
  held: measured in one process, 0.4–0.5 ms of CPU per delivery went to handing the lock back and forth,
  more than the SQL itself (SQLite was at 0.47 of the bare client that morning, Redis at 0.63).
- Machine: {machine(load_start, machine_load())}.

Reproduce: `{COMMAND}` (`--quick` for a CI-sized run; `--n`, `--rounds`, `--concurrency`).
""")


if __name__ == "__main__":
    main()
