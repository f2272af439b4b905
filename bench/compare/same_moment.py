"""A feature's cost as CPU per request, with the gateways measured at the same moments instead of in turn.

Two gateways (the feature on, and off) of this checkout — and, with `--before PATH`, the same two of another
checkout (e.g. `git worktree add --detach /tmp/before main`, its `.venv` linked) — each as `python main.py serve`
runs it (delivery workers off), each on a Redis database (`--store sqlite`: an SQLite file) of its own, all
loaded at once by this process (`--connections` keep-alive connections each, every request a new ticket), for
`--rounds` windows of `--seconds`.
Per gateway: its user + system CPU over the windows divided by the requests it answered.

Why: on this shared 2-core machine, measured in turn (bench/links/intake.py, bench/rest_intake/run.py --rules),
the CPU a request costs moves by 10-30 % from one round to the next with the other processes' load, and an on/off
difference of 10 % drowns in it. Loaded at the same moments, the gateways see the same machine: every window gives
each its share of the same contention. Throughput here says nothing (the gateways share the CPU).

Features: `links` (HIG_LINKS__ENABLED=false for off; payloads as bench/links/intake.py), `rules` (the shipped
jurisdiction and routing rules against bench.common.rules_mix.rules_off_files; `--mix fixture|realistic`).

Run from the repository root:
  .venv/bin/python -m bench.compare.same_moment links [--store sqlite] [--before /tmp/before] [--rounds 8] [--seconds 8]
Redis databases: --first-db (default 12) and the next three (each must be empty; emptied afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
from contextlib import ExitStack
from pathlib import Path

from bench.common import payloads, procs, rules_mix
from bench.common.intake import rules_mix_factory
from bench.common.load import RequestFactory, closed_loop
from bench.common.procs import Server, cpu_seconds, gateway_env, machine_load, redis_db, start_gateway
from bench.links import intake as links_bench

SIDES = ("on", "off")


def start(feature: str, checkout: Path, side: str, db: int, base: Path, mix: rules_mix.Mix, store: str,
          stack: ExitStack) -> tuple[Server, RequestFactory]:
    """One gateway, on a Redis database of its own (`db`) or an SQLite file of its own (under `base`)."""
    url = None
    if store == "redis":
        url = f"redis://127.0.0.1:6379/{db}"
        stack.enter_context(redis_db(url))
    name = f"{checkout.name}-{feature}-{side}"
    # No credit look-up (bench/common/intake.py says why).
    genv = gateway_env(base / name, store=store, redis_url=url, workers=False,
                       store_env={"HIG_CREDIT_LOOKUP__URL": ""})
    extra: dict[str, str] = {}
    if side == "off" and feature == "links":
        extra["HIG_LINKS__ENABLED"] = "false"
    if side == "off" and feature == "rules":
        jurisdiction, routing = rules_mix.rules_off_files(base / f"config-{name}")
        extra.update(HIG_JURISDICTION_FILE=str(jurisdiction), HIG_ROUTING_FILE=str(routing))
    procs.REPO = checkout  # spawn runs `main.py serve` from it
    server = start_gateway(genv, base, name=name, **extra)
    tag = f"{payloads.run_tag()}{db}"
    make = links_bench.factory(genv, tag) if feature == "links" else rules_mix_factory(mix, tag, genv)
    return server, make


async def measure(gateways: dict[str, tuple[Server, RequestFactory]], *, rounds: int, seconds: float,
                  connections: int) -> dict[str, list[tuple[float, int]]]:
    """(CPU seconds, requests answered) per gateway and window, all gateways loaded in the same windows."""
    index = dict.fromkeys(gateways, 0)

    async def one(name: str, secs: float) -> tuple[str, float, int]:
        server, make = gateways[name]
        before = cpu_seconds(server.pid)
        result, index[name] = await closed_loop("127.0.0.1", server.port, make, connections=connections,
                                                seconds=secs, start_index=index[name])
        return name, cpu_seconds(server.pid) - before, result.completed

    await asyncio.gather(*(one(name, 1.0) for name in gateways))  # warm-up
    windows: dict[str, list[tuple[float, int]]] = {name: [] for name in gateways}
    for r in range(rounds):
        load = os.getloadavg()[0]
        for name, cpu, done in await asyncio.gather(*(one(name, seconds) for name in gateways)):
            windows[name].append((cpu, done))
        print(f"  window {r + 1} (load {load:.1f}): " + "  ".join(
            f"{name} {w[-1][0] / max(w[-1][1], 1) * 1e3:.2f} ms" for name, w in windows.items()), flush=True)
    return windows


def per_request_ms(windows: list[tuple[float, int]]) -> float:
    return sum(c for c, _ in windows) / max(sum(n for _, n in windows), 1) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("feature", choices=("links", "rules"))
    parser.add_argument("--before", type=Path, help="another checkout whose gateways to load beside this one's")
    parser.add_argument("--mix", choices=rules_mix.MIXES, default="realistic", help="rules: the payload mix")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--connections", type=int, default=4, help="per gateway")
    parser.add_argument("--store", choices=("redis", "sqlite"), default="redis",
                        help="sqlite: each gateway on a file of its own")
    parser.add_argument("--first-db", type=int, default=12, help="redis: the first of the four databases")
    args = parser.parse_args()
    checkouts = {"this": procs.REPO}
    if args.before is not None:
        checkouts = {"before": args.before.resolve(), "this": procs.REPO}
    load_start = machine_load()
    with tempfile.TemporaryDirectory(prefix="bench-same-moment-") as tmp, ExitStack() as stack:
        gateways: dict[str, tuple[Server, RequestFactory]] = {}
        try:
            db = args.first_db
            for label, checkout in checkouts.items():
                for side in SIDES:
                    gateways[f"{label}-{side}"] = start(args.feature, checkout, side, db, Path(tmp), args.mix,
                                                           args.store, stack)
                    db += 1
            windows = asyncio.run(measure(gateways, rounds=args.rounds, seconds=args.seconds,
                                          connections=args.connections))
        finally:
            for server, _ in gateways.values():
                server.stop()
    ms = {name: per_request_ms(w) for name, w in windows.items()}
    what = f"{args.store}, " + args.feature + (f", {args.mix} mix" if args.feature == "rules" else "")
    print(f"{what}: {args.rounds} windows of {args.seconds:g} s, {args.connections} connections per gateway; "
          f"load {load_start} -> {machine_load()}")
    for name, value in ms.items():
        print(f"  {name:12} CPU {value:.3f} ms/request ({sum(n for _, n in windows[name])} requests)")
    for label in checkouts:
        on, off = windows[f"{label}-on"], windows[f"{label}-off"]
        ratios = [(a[0] / max(a[1], 1)) / (b[0] / max(b[1], 1)) - 1 for a, b in zip(on, off, strict=True)]
        print(f"  {label}: on / off CPU per request {ms[f'{label}-on'] / ms[f'{label}-off'] - 1:+.1%} "
              f"(windows {min(ratios):+.0%} .. {max(ratios):+.0%}, median {statistics.median(ratios):+.0%})")
    if "before" in checkouts:
        for side in SIDES:
            print(f"  this / before, {side}: {ms[f'this-{side}'] / ms[f'before-{side}'] - 1:+.1%}")


if __name__ == "__main__":
    main()
