"""Profile a gateway process under the intake load of bench/rest_intake or bench/soap_intake with py-spy.

Samples only while a thread holds the GIL (`--gil`), so time spent waiting for a core on a loaded
machine is not charged to the code. Writes a flame graph (SVG) or speedscope JSON; `--format raw`
gives collapsed stacks to grep.

`--kind delivery` profiles the delivery workers instead: tickets are queued in a fresh store first (as
bench/delivery does), then a gateway with its workers on drains them to simulators/receiver.py while sampled.

Run from the repository root (py-spy from requirements-dev.txt):
  .venv/bin/python -m bench.profile.run --kind rest --seconds 15 --out /tmp/rest.svg
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.common import payloads
from bench.common.fill import fill, open_bench_store, settings_for, ticket_maker
from bench.common.intake import rest_factories, soap_factories
from bench.common.load import closed_loop
from bench.common.procs import (
    GatewayEnv,
    delivery_file,
    gateway_env,
    receiver_stats,
    redis_db,
    start_gateway,
    start_receiver,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kind", choices=("rest", "soap", "delivery"), default="rest")
    parser.add_argument("--store", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--seconds", type=int, default=15)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--format", choices=("flamegraph", "speedscope", "raw"), default="flamegraph")
    parser.add_argument("--out", type=Path, default=Path("gateway-profile.svg"))
    args = parser.parse_args()
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        raise SystemExit("py-spy is not installed: .venv/bin/pip install -r requirements-dev.txt")
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp, \
            redis_db(args.redis_url) if args.store == "redis" else contextlib.nullcontext():
        work = Path(tmp)
        if args.kind == "delivery":
            profile_delivery(spy, args, work)
            return
        genv = gateway_env(work / "data", store=args.store, redis_url=args.redis_url)
        tag = payloads.run_tag()
        if args.kind == "rest":
            make, _ = rest_factories(genv.env["PARTNER_CITY12345_API_KEY"], tag)
        else:
            make, _ = soap_factories(genv.env["PARTNER_PROVINCE12345_INBOUND_PASSWORD"], tag)
        gateway = start_gateway(genv, work)
        try:
            _, index = asyncio.run(closed_loop("127.0.0.1", gateway.port, make, connections=args.connections,
                                               seconds=1.0))
            recorder = record(spy, gateway.pid, args)
            result, _ = asyncio.run(closed_loop("127.0.0.1", gateway.port, make, connections=args.connections,
                                                seconds=args.seconds, start_index=index))
            recorder.wait()
            print(f"{args.kind} intake under profile: {result.rate:,.0f} req/s, p99 {result.p99_ms:.0f} ms; "
                  f"profile in {args.out}")
        finally:
            gateway.stop()


def record(spy: str, pid: int, args: argparse.Namespace) -> subprocess.Popen[bytes]:
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(args.seconds), "--rate", "200",
                             "--gil", "--nonblocking", "--format", args.format, "--output", str(args.out)])


def profile_delivery(spy: str, args: argparse.Namespace, work: Path) -> None:
    """Queue enough tickets for the sampled seconds, then sample a gateway draining them to a receiver."""
    n = args.seconds * 600
    receiver = start_receiver(work)
    try:
        genv = gateway_env(work / "data", store=args.store, redis_url=args.redis_url, workers=True,
                           delivery_file=delivery_file(work / "delivery.yaml", receiver.url + "/api/v1/tickets"),
                           log_level="WARNING")
        asyncio.run(queue(genv, n))
        gateway = start_gateway(genv, work)
        try:
            recorder = record(spy, gateway.pid, args)
            recorder.wait()
            delivered = int(receiver_stats(receiver)["total"])
            print(f"delivery under profile: {delivered:,} of {n:,} delivered in about {args.seconds} s; "
                  f"profile in {args.out}")
        finally:
            gateway.stop()
    finally:
        receiver.stop()


async def queue(genv: GatewayEnv, n: int) -> None:
    settings = settings_for(genv.env)
    store = open_bench_store(settings)
    await store.open()
    try:
        await fill(store, ticket_maker(settings, payloads.run_tag()), n)
    finally:
        await store.close()


if __name__ == "__main__":
    main()
