"""Backlog drain after a national outage at steady load: time to drain, tickets lost (must be 0).

Three processes besides this one: the national 12315 simulator (simulators/national), a gateway
(`python main.py serve`, delivery workers on, national lane pointed at the simulator) and, here, the load
generator pushing new city 12345 tickets over REST at a steady rate. After `--before` seconds the
simulator is told to answer every national API call with 503 + Retry-After for `--outage` seconds (its
own fault injection); the load goes on through the outage and `--after` seconds beyond. Then this waits
until every ticket the gateway acknowledged (202) is registered at the simulator, and checks it by ticket id.
Drain time: from the outage's end until the backlog acknowledged by then is registered (the load going on).

The baseline, measured in the same run: the time the same load takes to reach the simulator with no
outage (`--before` seconds of it, the lag from the last push to the last registration). The ratio printed
is drain time / backlog built, i.e. seconds of catching up per second of outage.

Run from the repository root:  .venv/bin/python -m bench.drain.run [--quick | --full-minute] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.common import payloads
from bench.common.load import open_loop
from bench.common.procs import (
    Server,
    delivery_file,
    gateway_env,
    machine_load,
    national_token,
    redis_db,
    start_gateway,
    start_national,
)
from bench.common.report import machine, write_section

TITLE = "Backlog drain after a national outage"
COMMAND = ".venv/bin/python -m bench.drain.run --full-minute --store both --write-docs"


@dataclass
class Drain:
    store: str
    rate: float
    outage: float
    accepted: set[str] = field(default_factory=set)  # ticket ids the gateway acknowledged
    refused: dict[int, int] = field(default_factory=dict)  # intake answers other than 202
    backlog_at_recovery: int = 0  # acknowledged but not yet registered when the outage ended
    drain_seconds: float = float("nan")  # from the outage's end until the backlog of that moment registered
    lost: int = -1
    duplicates: int = 0  # submissions the simulator saw again (at-least-once, deduped by idempotency key)
    outage_answers: int = 0  # 503s the simulator served during the outage
    steady_lag: float = float("nan")  # no outage: seconds from the last push to its registration
    intake_p99_ms: float = float("nan")
    notes: list[str] = field(default_factory=list)


def national_ids(client: httpx.Client, national: Server, token: str) -> set[str]:
    """Every ticket id registered at the simulator (its API is faulted too: a 503 is asked again)."""
    while True:
        response = client.get(f"{national.url}/api/v1/tickets", headers={"Authorization": f"Bearer {token}"})
        if response.status_code != 503:
            response.raise_for_status()
            return {t["ticket_id"] for t in response.json()["tickets"]}
        time.sleep(0.1)


def national_stats(client: httpx.Client, national: Server) -> dict[str, Any]:
    stats: dict[str, Any] = client.get(f"{national.url}/sim/stats").json()
    return stats


def wait_registered(client: httpx.Client, national: Server, token: str, wanted: set[str],
                    timeout: float) -> float | None:
    """Seconds until every wanted id is registered at the simulator; None on timeout."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if int(national_stats(client, national)["tickets"]) >= len(wanted) and wanted <= national_ids(
                client, national, token):
            return time.perf_counter() - started
        time.sleep(0.1)
    return None


def run(store: str, args: argparse.Namespace, work: Path) -> Drain:
    result = Drain(store, args.rate, args.outage)
    genv = gateway_env(work / f"data-{store}", store=store, redis_url=args.redis_url, workers=True,
                       log_level="WARNING")
    token = national_token(genv)
    national = start_national(work, token)
    try:
        deliveries = delivery_file(work / f"delivery-{store}.yaml", f"{national.url}/api/v1/tickets")
        genv.env["HIG_DELIVERY_FILE"] = str(deliveries)
        gateway = start_gateway(genv, work, name=f"gateway-{store}")
        try:
            drain(result, args, genv.env["PARTNER_CITY12345_API_KEY"], gateway, national, token)
        finally:
            gateway.stop()
    finally:
        national.stop()
    return result


def drain(result: Drain, args: argparse.Namespace, api_key: str, gateway: Server, national: Server,
          token: str) -> None:
    tag = payloads.run_tag()
    headers = {"Content-Type": "application/json", "X-Api-Key": api_key}

    def make(i: int) -> tuple[str, dict[str, str], bytes]:
        return payloads.CITY_PATH, headers, payloads.city_body(tag, i)

    def on_status(_: int, status: int, body: bytes) -> None:
        if status == 202:
            result.accepted.add(json.loads(body)["ticket_id"])
        else:
            result.refused[status] = result.refused.get(status, 0) + 1

    with httpx.Client(trust_env=False, timeout=30.0) as client:
        # Baseline in the same run: the same steady load with the national platform up.
        asyncio.run(open_loop("127.0.0.1", gateway.port, make, rate=args.rate, seconds=args.before,
                              on_status=on_status))
        steady = set(result.accepted)
        lag = wait_registered(client, national, token, steady, timeout=60)
        result.steady_lag = float("nan") if lag is None else lag

        async def load_with_outage() -> None:
            async def outage() -> None:
                await asyncio.sleep(args.before)
                async with httpx.AsyncClient(trust_env=False) as control:
                    (await control.post(f"{national.url}/sim/faults",
                                        json={"outage_seconds": args.outage})).raise_for_status()
                print(f"  {result.store}: national outage for {args.outage:g} s", flush=True)

            outage_task = asyncio.create_task(outage())
            load = await open_loop("127.0.0.1", gateway.port, make, rate=args.rate,
                                   seconds=args.before + args.outage + args.after, start_index=10**6,
                                   on_status=on_status)
            result.intake_p99_ms = load.p99_ms
            await outage_task

        outage_ends = time.perf_counter() + args.before + args.outage

        async def main() -> None:
            await load_with_outage()

        # When the outage ends the backlog is noted; its drain is timed while the load goes on.
        async def with_probe() -> None:
            runner = asyncio.create_task(main())
            await asyncio.sleep(max(outage_ends - time.perf_counter(), 0))
            backlog = set(result.accepted)
            registered = await asyncio.to_thread(national_ids, client, national, token)
            result.backlog_at_recovery = len(backlog - registered)
            print(f"  {result.store}: outage over; backlog {result.backlog_at_recovery} tickets", flush=True)
            waited = await asyncio.to_thread(wait_registered, client, national, token, backlog,
                                             args.outage + 300)
            if waited is not None:
                result.drain_seconds = time.perf_counter() - outage_ends
            await runner

        asyncio.run(with_probe())
        if wait_registered(client, national, token, result.accepted, timeout=args.outage + 300) is None:
            result.notes.append("not every acknowledged ticket was registered within the timeout")
        registered = national_ids(client, national, token)
        result.lost = len(result.accepted - registered)
        stats = national_stats(client, national)
        result.duplicates = int(stats.get("duplicates", 0))
        result.outage_answers = int(stats.get("faults", {}).get("outage", 0)) if isinstance(
            stats.get("faults"), dict) else 0


def report(result: Drain) -> list[str]:
    return [
        f"{result.store}: {result.rate:g} tickets/s, national outage {result.outage:g} s",
        f"  acknowledged {len(result.accepted)}, refused {result.refused or 0}, intake p99 "
        f"{result.intake_p99_ms:.0f} ms",
        f"  backlog when the outage ended: {result.backlog_at_recovery}; 503s served during the outage: "
        f"{result.outage_answers}",
        f"  backlog drained {result.drain_seconds:.1f} s after the outage ended, load going on (no outage: last "
        f"ticket registered {result.steady_lag:.1f} s after its push)",
        f"  lost: {result.lost}; re-sent duplicates absorbed by the idempotency key: {result.duplicates}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rate", type=float, default=20.0, help="new tickets per second, steady")
    parser.add_argument("--outage", type=float, default=15.0, help="seconds the national platform is down")
    parser.add_argument("--full-minute", action="store_true", help="a one-minute outage (the issue's case)")
    parser.add_argument("--before", type=float, default=8.0, help="seconds of load before the outage")
    parser.add_argument("--after", type=float, default=8.0, help="seconds of load after the outage")
    parser.add_argument("--store", choices=("sqlite", "redis", "both"), default="sqlite")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--quick", action="store_true", help="CI-sized: a 5 s outage, 4 s before and after")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    if args.full_minute:
        args.outage = 60.0
    if args.quick:
        args.outage, args.before, args.after = 5.0, 4.0, 4.0
    load_start = machine_load()
    results: list[Drain] = []
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp:
        for store in ("sqlite", "redis") if args.store == "both" else (args.store,):
            if store == "redis":
                with redis_db(args.redis_url):
                    results.append(run(store, args, Path(tmp)))
            else:
                results.append(run(store, args, Path(tmp)))
            for line in report(results[-1]):
                print(line, flush=True)
    if args.write_docs:
        rows = "\n".join(
            f"| {r.store} | {r.outage:g} s | {r.rate:g}/s | {len(r.accepted):,} | {r.outage_answers:,} | "
            f"{r.backlog_at_recovery:,} | "
            f"**{r.drain_seconds:.1f} s** | {r.steady_lag:.1f} s | **{r.lost}** | {r.duplicates} | "
            f"{r.intake_p99_ms:.0f} ms |" for r in results)
        write_section(TITLE, f"""## {TITLE}

`bench/drain/run.py`: the national simulator (its own process) answers every call with 503 and a
Retry-After for the length of the outage, while this process keeps pushing new city 12345 tickets to a
gateway process (delivery workers on) at a steady rate, {args.before:g} s before the outage and
{args.after:g} s after it. Drain time is from the outage's end until every ticket the gateway acknowledged
(202) by that moment is registered at the simulator, with the load going on; lost is checked ticket id by
ticket id for every acknowledged ticket, after the load. The baseline of the same
run is the same load with the platform up: how long after its last push the last ticket registered.

| store | outage | load | acknowledged | 503s served | backlog at recovery | drained after recovery | \
no-outage lag | lost | duplicates | intake p99 |
|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|
{rows}

- During the outage the national lane pauses for the simulator's Retry-After (the remaining outage,
  bounded by the lane's retry policy) and schedules each failed delivery's retry no earlier than that, so
  the backlog goes out when the platform returns rather than at the exponential schedule's next step;
  intake is unaffected (the partner keeps getting 202).
- Duplicates are deliveries sent again after their answer was lost or their lease ran out; the simulator
  dedupes them by Idempotency-Key.
- Machine: {machine(load_start, machine_load())}.

Reproduce: `{COMMAND}` (the one-minute outage on both stores, about 4 minutes; `--outage N`, `--rate`;
without `--full-minute` the outage is {15:g} s, and `--quick` runs a 5 s one).
""")


if __name__ == "__main__":
    main()
