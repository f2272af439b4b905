"""Every store under intake and delivery at once, and two gateway processes against one on Redis and PostgreSQL.

Each configuration runs gateway process(es) with delivery workers on, the national lane pointed at a local
receiver (simulators/receiver.py, its own process), and this process as the REST load generator (new city
12345 tickets, closed loop, the connections split evenly over the gateway processes). Measured per
configuration: intake req/s and p50/p99, deliveries/s at the receiver over the same window, how long the
rest of the backlog took once the load stopped, and the gateway processes' CPU per ticket. The
configurations run in the order A B C then C B A (with --rounds 2) so drift in machine load falls on all.

Ratios printed: redis / sqlite and postgres / sqlite (one process each), and two processes / one process on Redis
and on PostgreSQL.

Run from the repository root:  .venv/bin/python -m bench.scaleout.run [--quick] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.common import payloads
from bench.common.load import LoadResult, closed_loop
from bench.common.procs import (
    Server,
    cpu_seconds,
    delivery_file,
    gateway_env,
    machine_load,
    receiver_reset,
    receiver_stats,
    start_gateway,
    start_receiver,
    store_backend,
)
from bench.common.report import machine, write_section

TITLE = "Stores and processes: intake and delivery together"
COMMAND = ".venv/bin/python -m bench.scaleout.run --rounds 2 --write-docs"
CONFIGS = (("sqlite", 1), ("redis", 1), ("redis", 2), ("postgres", 1), ("postgres", 2))


@dataclass
class Run:
    store: str
    processes: int
    intake: LoadResult
    delivered_in_window: int
    backlog_seconds: float  # after the load stopped, until every acknowledged ticket reached the receiver
    cpu_ms_per_ticket: float  # gateway processes' CPU (intake + delivery) per acknowledged ticket
    duplicates: int

    @property
    def name(self) -> str:
        return f"{self.store} × {self.processes}"

    @property
    def delivery_rate(self) -> float:
        return self.delivered_in_window / self.intake.seconds


@dataclass
class Summary:
    store: str
    processes: int
    runs: list[Run] = field(default_factory=list)

    def median(self, attr: str) -> float:
        values = [getattr(r, attr) if not attr.startswith("intake.") else getattr(r.intake, attr[7:])
                  for r in self.runs]
        return float(statistics.median(values))


def total_received(receiver: Server) -> int:
    return int(receiver_stats(receiver)["total"])


def one_run(store: str, processes: int, args: argparse.Namespace, work: Path, receiver: Server, r: int,
            store_env: dict[str, str]) -> Run:
    name = f"{store}-{processes}-{r}"
    deliveries = delivery_file(work / f"delivery-{name}.yaml", receiver.url + "/api/v1/tickets")
    genv = gateway_env(work / f"data-{name}", store=store, redis_url=args.redis_url, workers=True,
                       delivery_file=deliveries, store_env=store_env)
    tag = payloads.run_tag()
    headers = {"Content-Type": "application/json", "X-Api-Key": genv.env["PARTNER_CITY12345_API_KEY"]}

    def make(i: int) -> tuple[str, dict[str, str], bytes]:
        return payloads.CITY_PATH, headers, payloads.city_body(tag, i)

    gateways: list[Server] = []
    try:
        for k in range(processes):
            gateways.append(start_gateway(genv, work, name=f"gateway-{name}-{k}"))
        per = max(args.connections // processes, 1)

        async def load(seconds: float, offset: int) -> LoadResult:
            results = await asyncio.gather(*(
                closed_loop("127.0.0.1", g.port, make, connections=per, seconds=seconds,
                            start_index=offset + k * 10**7) for k, g in enumerate(gateways)))
            merged = LoadResult(0.0)
            for result, _ in results:
                merged = merged.merge(result)
            merged.seconds = max(result.seconds for result, _ in results)
            return merged

        warm = asyncio.run(load(1.0, 0))
        received_before = total_received(receiver)
        cpu_before = sum(cpu_seconds(g.pid) for g in gateways)
        result = asyncio.run(load(args.seconds, 10**9))
        delivered = total_received(receiver) - received_before
        expected = warm.statuses.get(202, 0) + result.statuses.get(202, 0)  # the receiver was reset before
        stopped = time.perf_counter()
        while total_received(receiver) < expected and time.perf_counter() - stopped < 120:
            time.sleep(0.05)
        backlog_seconds = time.perf_counter() - stopped
        cpu = sum(cpu_seconds(g.pid) for g in gateways) - cpu_before
        stats = receiver_stats(receiver)
    finally:
        for g in gateways:
            g.stop()
    receiver_reset(receiver)
    run = Run(store, processes, result, delivered, backlog_seconds,
              cpu / max(result.statuses.get(202, 0), 1) * 1000,
              int(stats["keys_received_twice_or_more"]))
    print(f"  {run.name}: intake {result.rate:6,.0f} req/s (p50 {result.p50_ms:5.1f} ms, p99 {result.p99_ms:6.1f} ms), "
          f"delivered {run.delivery_rate:6,.0f}/s in the window, rest {backlog_seconds:4.1f} s after, "
          f"{run.cpu_ms_per_ticket:.2f} ms CPU per ticket, duplicates {run.duplicates}", flush=True)
    return run


def table(summaries: list[Summary]) -> str:
    lines = ["| store × gateway processes | intake req/s | p50 ms | p99 ms | deliveries/s (same window) | "
             "backlog after the load | gateway CPU per ticket | duplicates |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for s in summaries:
        lines.append(f"| {s.store} × {s.processes} | {s.median('intake.rate'):,.0f} | "
                     f"{s.median('intake.p50_ms'):.1f} | "
                     f"{s.median('intake.p99_ms'):.1f} | {s.median('delivery_rate'):,.0f} | "
                     f"{s.median('backlog_seconds'):.1f} s | {s.median('cpu_ms_per_ticket'):.2f} ms | "
                     f"{sum(r.duplicates for r in s.runs)} |")
    return "\n".join(lines)


def ratios(summaries: list[Summary]) -> dict[str, float]:
    by = {(s.store, s.processes): s.median("intake.rate") for s in summaries}
    return {"redis / sqlite": by[("redis", 1)] / by[("sqlite", 1)],
            "postgres / sqlite": by[("postgres", 1)] / by[("sqlite", 1)],
            "two processes / one, redis": by[("redis", 2)] / by[("redis", 1)],
            "two processes / one, postgres": by[("postgres", 2)] / by[("postgres", 1)]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="load window per configuration and round")
    parser.add_argument("--rounds", type=int, default=1, help="1: A B C; 2: A B C C B A; …")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11",
                        help="a database of its own: it must be empty, and is emptied afterwards")
    parser.add_argument("--quick", action="store_true", help="CI-sized: one round of 3 s")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    if args.quick:
        args.seconds, args.rounds = 3.0, 1
    load_start = machine_load()
    summaries = {config: Summary(*config) for config in CONFIGS}
    with tempfile.TemporaryDirectory(prefix="bench-scaleout-") as tmp:
        work = Path(tmp)
        receiver = start_receiver(work)
        try:
            for r in range(args.rounds):
                for store, processes in CONFIGS if r % 2 == 0 else tuple(reversed(CONFIGS)):
                    with store_backend(store, redis_url=args.redis_url) as store_env:
                        summaries[(store, processes)].runs.append(
                            one_run(store, processes, args, work, receiver, r, store_env))
        finally:
            receiver.stop()
    ordered = list(summaries.values())
    found = ratios(ordered)
    said = "; ".join(f"{name} {value:.2f}" for name, value in found.items())
    print(table(ordered))
    print(f"intake ratios: {said}")
    if args.write_docs:
        write_section(TITLE, f"""## {TITLE}

`bench/scaleout/run.py`: gateway process(es) with delivery workers on and the national lane pointed at a local
receiver (its own process), under {args.connections} closed-loop REST connections from the load generator (split
evenly over the gateway processes), {args.seconds:g} s per configuration after a 1 s warm-up; the configurations
in alternating order (A B C, then C B A) over {args.rounds} round(s), medians shown. Intake and delivery share
each gateway process.

{table(ordered)}

**Intake ratios (one process each unless said): {said}.**

- Deliveries/s counts what reached the receiver during the load window; the backlog column is how long
  the rest took once the load stopped. Duplicates: keys the receiver got more than once.
- Two processes on a 2-CPU machine share the cores with the load generator, the receiver and the store's
  server, so the second process can add little here; the figure shows that several processes share one Redis or
  PostgreSQL store correctly (no duplicate sends, every ticket delivered) and what they cost, not how far they
  scale on more cores.
- PostgreSQL 15 is the machine's own cluster (Debian's defaults: fsync on, synchronous_commit on, so every
  acknowledged intake is flushed to its WAL before the partner hears 202), each configuration in a schema of
  its own, dropped afterwards. Redis runs without AOF here (aof_enabled=0), SQLite at synchronous=FULL for
  acknowledged writes.
- Machine: {machine(load_start, machine_load())}.

Reproduce: `{COMMAND}` (`--quick` for a CI-sized run; `--seconds`, `--rounds`, `--connections`).
""")


if __name__ == "__main__":
    main()
