"""The intake floor, measured honestly: the bare endpoint, the minimal intake answering through a fast path (as the
gateway answers pushes) and through FastAPI routes, and the gateway itself, in the same alternating rounds, on
uvicorn's default stack here (asyncio + h11) and on its standard stack (uvloop + httptools, what
`fastapi[standard]` installs); then each at a fixed moderate rate (open loop) for p50/p99.

uvloop and httptools come from a folder of their own on PYTHONPATH (`HIG_STANDARD_STACK`, default
/tmp/hig-standard-stack: `pip install --target /tmp/hig-standard-stack uvloop==0.23.0 httptools==0.9.0`), never
the shared virtual environment, where uvicorn would pick them for every gateway.

  .venv/bin/python -m bench.floor.stacks [--rounds 3] [--seconds 4] [--rate 200] [--store sqlite] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.common import payloads
from bench.common.intake import Side, alternate_sides, rest_factories, soap_factories
from bench.common.load import LoadResult, RequestFactory, open_loop
from bench.common.procs import (
    Server,
    free_port,
    gateway_env,
    machine_load,
    redis_db,
    spawn,
    start_baseline,
    start_gateway,
)
from bench.common.report import machine, write_section
from bench.floor.run import STACKS, TARGETS, stack_env
from bench.floor.server import FLOOR_CITY_PATH, FLOOR_SOAP_PATH

SECTION = "Intake floor on both stacks: fast path, routes and the gateway"
SIDES = ("bare endpoint", "floor, fast path", "floor, FastAPI routes", "floor deciding, fast path", "gateway")


@dataclass
class StackRun:
    stack: str
    kind: str
    store: str
    sides: dict[str, Side]
    steady: dict[str, LoadResult]

    def ratio(self, name: str) -> float:
        return self.sides[name].total.rate / self.sides["bare endpoint"].total.rate

    def round_ratios(self, name: str, against: str = "bare endpoint") -> list[float]:
        return [a.rate / b.rate for a, b in zip(self.sides[name].rounds, self.sides[against].rounds, strict=True)
                if b.rate]


@contextlib.contextmanager
def servers(kind: str, stack: str, store: str, work: Path, redis_url: str
            ) -> Iterator[list[tuple[str, Server, RequestFactory]]]:
    env = {**os.environ, **stack_env(stack)}
    genv = gateway_env(work / f"gateway-{kind}-{stack}", store=store, redis_url=redis_url, workers=False)
    tag = payloads.run_tag()
    floor_key, floor_password = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    if kind == "rest":
        gateway_make, bare_make = rest_factories(genv.env["PARTNER_CITY12345_API_KEY"], tag)
        floor_make_raw, _ = rest_factories(floor_key, tag)
        floor_path = FLOOR_CITY_PATH
    else:
        gateway_make, bare_make = soap_factories(genv.env["PARTNER_PROVINCE12345_INBOUND_PASSWORD"], tag)
        floor_make_raw, _ = soap_factories(floor_password, tag)
        floor_path = FLOOR_SOAP_PATH

    def floor_make(i: int) -> tuple[str, dict[str, str], bytes]:
        _, headers, body = floor_make_raw(i)
        return floor_path, headers, body

    started: list[Server] = []
    try:
        started.append(start_baseline(work, env=env))
        sides: list[tuple[str, Server, RequestFactory]] = [("bare endpoint", started[-1], bare_make)]
        floors = (("fast-path", False, "floor, fast path"), ("routes", False, "floor, FastAPI routes"),
                  ("fast-path", True, "floor deciding, fast path"))
        for answer, decide, name in floors:
            port = free_port()
            label = f"floor-{kind}-{stack}-{answer}{'-deciding' if decide else ''}"
            floor_env = {**env, "FLOOR_API_KEY": floor_key, "FLOOR_SOAP_PASSWORD": floor_password,
                         "FLOOR_DB": str(work / f"{label}.db")}
            if decide:  # the gateway's configuration, read for its decisions
                floor_env.update({k: v for k, v in genv.env.items() if k.startswith("HIG_")})
            started.append(spawn(label, [
                "-m", "bench.floor.server", "--port", str(port), "--store", store, "--redis-url", redis_url,
                "--answer", answer, *(["--decide"] if decide else []), *STACKS[stack]], port, work, env=floor_env))
            sides.append((name, started[-1], floor_make))
        started.append(start_gateway(genv, work, name=f"gateway-{kind}-{stack}", **stack_env(stack)))
        sides.append(("gateway", started[-1], gateway_make))
        yield sides
    finally:
        for server in reversed(started):
            server.stop()


def measure(kind: str, stack: str, store: str, args: argparse.Namespace, work: Path) -> StackRun:
    with servers(kind, stack, store, work, args.redis_url) as sides:
        measured, index = asyncio.run(alternate_sides(sides, rounds=args.rounds, seconds=args.seconds,
                                                      connections=args.connections))
        steady: dict[str, LoadResult] = {}
        for name, server, make in sides:
            steady[name] = asyncio.run(open_loop("127.0.0.1", server.port, make, rate=args.rate,
                                                 seconds=args.steady_seconds, start_index=index))
            index += int(args.rate * args.steady_seconds) + 1
    return StackRun(stack, kind, store, measured, steady)


def table(runs: list[StackRun]) -> str:
    lines = ["| stack | intake | server | req/s (saturated) | CPU per request | ratio to the bare endpoint "
             "(all rounds; per round) | gateway / this floor | p50 / p99 ms at the fixed rate |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    for run in runs:
        for name in SIDES:
            total = run.sides[name].total
            ratios = run.round_ratios(name)
            share = ""
            if name.startswith("floor"):
                of = run.round_ratios("gateway", name)
                share = (f"{run.sides['gateway'].total.rate / total.rate:.2f} "
                         f"({min(of):.2f}–{max(of):.2f})" if of else "")
            steady = run.steady[name]
            ratio = "" if name == "bare endpoint" else (f"**{run.ratio(name):.2f}** "
                                                         f"({min(ratios):.2f}–{max(ratios):.2f})")
            lines.append(f"| {run.stack} | {run.kind.upper()} | {name} | {total.rate:,.0f} | "
                         f"{total.cpu_ms_per_request:.2f} ms | {ratio} | {share} | "
                         f"{steady.p50_ms:.1f} / {steady.p99_ms:.1f} |")
    return "\n".join(lines)


def _spread(ratios: list[float]) -> str:
    return f"{min(ratios):.2f}–{max(ratios):.2f}" if ratios else "-"


def verdict(runs: list[StackRun]) -> list[str]:
    said = []
    for run in runs:
        target = TARGETS[run.kind]
        floor = run.ratio("floor, fast path")
        gateway = run.ratio("gateway")
        share = run.sides["gateway"].total.rate / run.sides["floor, fast path"].total.rate
        reach = "reaches" if gateway >= target else ("cannot reach (its own floor does not)" if floor < target
                                                      else "does not reach (its floor does)")
        deciding = run.sides["floor deciding, fast path"].total.rate
        ceiling = deciding / run.sides["floor, fast path"].total.rate
        said.append(f"{run.stack}, {run.kind.upper()}: the gateway {reach} the target {target} "
                    f"({gateway:.2f}; the fast-path floor {floor:.2f}); it runs at {share:.2f} of that floor. "
                    f"The floor deciding as the gateway must runs at {ceiling:.2f} of the floor (per round "
                    f"{_spread(run.round_ratios('floor deciding, fast path', 'floor, fast path'))}), and the gateway "
                    f"at {run.sides['gateway'].total.rate / deciding:.2f} of the deciding floor.")
    return said


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--rate", type=float, default=200.0, help="the fixed moderate rate for p50/p99")
    parser.add_argument("--steady-seconds", type=float, default=4.0)
    parser.add_argument("--store", choices=("sqlite", "redis"), default="sqlite")
    parser.add_argument("--stacks", nargs="+", choices=tuple(STACKS), default=list(STACKS))
    parser.add_argument("--kinds", nargs="+", choices=("rest", "soap"), default=["rest", "soap"])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument("--write-docs", action="store_true")
    args = parser.parse_args()
    load_start = machine_load()
    runs = []
    with tempfile.TemporaryDirectory(prefix="bench-stacks-") as tmp:
        for stack in args.stacks:
            for kind in args.kinds:
                with redis_db(args.redis_url) if args.store == "redis" else contextlib.nullcontext():
                    runs.append(measure(kind, stack, args.store, args, Path(tmp)))
                print(table(runs[-1:]), flush=True)
    text = table(runs)
    said = verdict(runs)
    print(text)
    print("\n".join(said))
    spread = [r for run in runs for r in run.round_ratios("gateway")]
    if args.write_docs:
        write_section(SECTION, f"""## {SECTION}

`bench/floor/stacks.py`: in the same alternating rounds ({args.connections} connections, {args.rounds} rounds of
{args.seconds:g} s per server, the order reversed every round), the bare endpoint (`bench/common/baseline.py`), the
minimal intake (`bench/floor/server.py`) answering through a fast path as the gateway does and through FastAPI
routes, the same fast-path floor also making the business decisions every intake must make (`--decide`,
`bench/floor/decisions.py`: the jurisdiction screen, handler and deadlines, the routing rules and the outbox, the
partner-number and duplicate-link look-ups and what they store, the log line — with the gateway's own
configuration and functions), and the gateway (`python main.py serve`, workers off), all on the {args.store}
store; then each at a fixed
{args.rate:g} requests/s for {args.steady_seconds:g} s (open loop) for p50/p99. Ratios are to the bare endpoint
of the same rounds; "gateway / this floor" is the gateway's rate over that floor's (per round in brackets).

{text}

- {chr(10).join('- ' + s for s in said)[2:]}
- Spread: the gateway's per-round ratios to the bare endpoint ran {min(spread):.2f}–{max(spread):.2f} over this
  run ({statistics.median(spread):.2f} median). The machine is shared (2 cores, other engineers' tests and
  benchmarks); one run, short rounds: compare ratios within it, not req/s across runs.
- Machine: {machine(load_start, machine_load())}.

Reproduce: `pip install --target /tmp/hig-standard-stack uvloop==0.23.0 httptools==0.9.0`, then
`.venv/bin/python -m bench.floor.stacks --write-docs` (this run: `--rounds {args.rounds} --seconds {args.seconds:g}
--rate {args.rate:g} --store {args.store}`).""")


if __name__ == "__main__":
    main()
