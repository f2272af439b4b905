"""Intake throughput of the gateway against the bare baseline, in alternating rounds of one run.

Both servers run at once as separate processes; the load generator (this process) drives one of them at
a time, switching every round, so that both see the same machine load. Every request is a new ticket.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from bench.common import payloads, rules_mix
from bench.common.load import LoadResult, RequestFactory, closed_loop
from bench.common.procs import (
    STORE_CHOICES,
    GatewayEnv,
    Server,
    cpu_seconds,
    gateway_env,
    machine_load,
    start_baseline,
    start_gateway,
    store_backend,
    stores_of,
)
from bench.common.rules_mix import Mix, rules_off_files

Kind = Literal["rest", "soap"]
PROVINCE_USER = "gz-12345"  # config/adapters/province-12345-soap.yaml: options.inbound_wsse.username


@dataclass
class Side:
    name: str
    rounds: list[LoadResult] = field(default_factory=list)

    @property
    def total(self) -> LoadResult:
        merged = LoadResult(0.0)
        for r in self.rounds:
            merged = merged.merge(r)
        return merged


@dataclass
class Comparison:
    kind: str
    store: str
    gateway: Side
    baseline: Side
    connections: int
    seconds: float
    load_start: str
    load_end: str = ""
    gateway_rss_mb: float = 0.0
    notes: list[str] = field(default_factory=list)

    @property
    def ratio(self) -> float:
        return self.gateway.total.rate / self.baseline.total.rate

    @property
    def round_ratios(self) -> list[float]:
        return [g.rate / b.rate for g, b in zip(self.gateway.rounds, self.baseline.rounds, strict=True) if b.rate]

    def lines(self) -> list[str]:
        g, b = self.gateway.total, self.baseline.total
        ratios = self.round_ratios
        return [
            f"{self.kind} intake on {self.store}: {len(self.gateway.rounds)} rounds x {self.seconds:g} s each side, "
            f"{self.connections} connections",
            f"  gateway : {g.rate:8,.0f} req/s  p50 {g.p50_ms:6.1f} ms  p99 {g.p99_ms:6.1f} ms  "
            f"CPU {g.cpu_ms_per_request:5.2f} ms/req  {dict(g.statuses)}",
            f"  baseline: {b.rate:8,.0f} req/s  p50 {b.p50_ms:6.1f} ms  p99 {b.p99_ms:6.1f} ms  "
            f"CPU {b.cpu_ms_per_request:5.2f} ms/req  {dict(b.statuses)}",
            f"  ratio   : {self.ratio:8.2f}  (rounds {min(ratios):.2f}-{max(ratios):.2f}, "
            f"median {statistics.median(ratios):.2f})",
        ]


def rest_factories(api_key: str, tag: str) -> tuple[RequestFactory, RequestFactory]:
    gateway_headers = {"Content-Type": "application/json", "X-Api-Key": api_key}
    bare_headers = {"Content-Type": "application/json"}

    def gateway(i: int) -> tuple[str, dict[str, str], bytes]:
        return payloads.CITY_PATH, gateway_headers, payloads.city_body(tag, i)

    def bare(i: int) -> tuple[str, dict[str, str], bytes]:
        return payloads.BASE_CITY_PATH, bare_headers, payloads.city_body(tag, i)

    return gateway, bare


def soap_factories(password: str, tag: str) -> tuple[RequestFactory, RequestFactory]:
    soap_headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
    bare_headers = {"Content-Type": "application/json"}

    def gateway(i: int) -> tuple[str, dict[str, str], bytes]:
        created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = payloads.soap_envelope(payloads.province_order(tag, i), PROVINCE_USER, password, created)
        return payloads.SOAP_PATH, soap_headers, body

    def bare(i: int) -> tuple[str, dict[str, str], bytes]:
        return payloads.BASE_PROVINCE_PATH, bare_headers, payloads.province_body(tag, i)

    return gateway, bare


async def alternate_sides(sides: list[tuple[str, Server, RequestFactory]], *, rounds: int, seconds: float,
                          connections: int, warmup: float = 1.0, expect: tuple[int, ...] = (200, 202),
                          start_index: int = 0, progress: Callable[[str], None] = print
                          ) -> tuple[dict[str, Side], int]:
    """Rounds of `seconds` on each server in turn, in the given order on even rounds and the reverse on odd
    ones (A B C, C B A, …), after a warm-up of each; the sides by name and the next unused request index."""
    measured = {name: Side(name) for name, _, _ in sides}
    index = start_index
    for _, server, make in sides:
        _, index = await closed_loop("127.0.0.1", server.port, make, connections=connections, seconds=warmup,
                                     start_index=index, expect=expect)
    width = max(len(name) for name, _, _ in sides)
    for r in range(rounds):
        for name, server, make in sides if r % 2 == 0 else sides[::-1]:
            cpu_before = cpu_seconds(server.pid)
            result, index = await closed_loop("127.0.0.1", server.port, make, connections=connections,
                                              seconds=seconds, start_index=index, expect=expect)
            result.cpu = cpu_seconds(server.pid) - cpu_before
            measured[name].rounds.append(result)
            progress(f"  round {r + 1} {name:{width}}: {result.rate:8,.0f} req/s  p99 {result.p99_ms:6.1f} ms  "
                     f"CPU {result.cpu_ms_per_request:5.2f} ms/req")
    return measured, index


async def alternate(gateway: tuple[Server, RequestFactory], baseline: tuple[Server, RequestFactory], *,
                    rounds: int, seconds: float, connections: int, warmup: float = 1.0,
                    expect: tuple[int, ...] = (200, 202),
                    progress: Callable[[str], None] = print) -> tuple[Side, Side]:
    """Rounds of `seconds` on each server in turn (the order flips every round); a warm-up first."""
    sides, _ = await alternate_sides([("baseline", *baseline), ("gateway", *gateway)], rounds=rounds,
                                     seconds=seconds, connections=connections, warmup=warmup, expect=expect,
                                     progress=progress)
    return sides["gateway"], sides["baseline"]


def run_comparison(kind: Kind, *, rounds: int, seconds: float, connections: int, store: str = "sqlite",
                   redis_url: str | None = None, work: Path | None = None,
                   store_env: dict[str, str] | None = None) -> Comparison:
    """Start the bare baseline and a gateway (workers off: intake only), alternate load between them."""
    with tempfile.TemporaryDirectory(prefix=f"bench-{kind}-") as tmp:
        base = work or Path(tmp)
        genv = gateway_env(base / "data", store=store, redis_url=redis_url, workers=False, store_env=store_env)
        tag = payloads.run_tag()
        if kind == "rest":
            gateway_make, bare_make = rest_factories(genv.env["PARTNER_CITY12345_API_KEY"], tag)
        else:
            gateway_make, bare_make = soap_factories(genv.env["PARTNER_PROVINCE12345_INBOUND_PASSWORD"], tag)
        load_start = machine_load()
        baseline = start_baseline(base)
        try:
            gateway = start_gateway(genv, base)
            try:
                g, b = asyncio.run(alternate((gateway, gateway_make), (baseline, bare_make), rounds=rounds,
                                             seconds=seconds, connections=connections))
                rss = gateway.rss_mb()
            finally:
                gateway.stop()
        finally:
            baseline.stop()
        comparison = Comparison(kind, store, g, b, connections, seconds, load_start, machine_load(), rss)
        for line in comparison.lines():
            print(line)
        return comparison


def intake_table(comparisons: list[Comparison]) -> str:
    lines = ["| server | store | req/s | p50 ms | p99 ms | server CPU per request | ratio (all rounds) | "
             "per-round ratios |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    for c in comparisons:
        g, b = c.gateway.total, c.baseline.total
        ratios = c.round_ratios
        lines.append(f"| gateway ({c.kind}) | {c.store} | {g.rate:,.0f} | {g.p50_ms:.1f} | {g.p99_ms:.1f} | "
                     f"{g.cpu_ms_per_request:.2f} ms | **{c.ratio:.2f}** | {min(ratios):.2f}–{max(ratios):.2f} |")
        lines.append(f"| bare baseline | — | {b.rate:,.0f} | {b.p50_ms:.1f} | {b.p99_ms:.1f} | "
                     f"{b.cpu_ms_per_request:.2f} ms | | |")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=4, help="alternating rounds (each side once per round)")
    parser.add_argument("--seconds", type=float, default=6.0, help="length of one side's round")
    parser.add_argument("--connections", type=int, default=16, help="keep-alive connections of the load generator")
    parser.add_argument("--store", choices=STORE_CHOICES, default="sqlite",
                        help='"both": SQLite and Redis; "all": and PostgreSQL')
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11",
                        help="a database of its own: it must be empty, and is emptied afterwards")
    parser.add_argument("--quick", action="store_true", help="CI-sized: 2 rounds of 2 s")
    parser.add_argument("--write-docs", action="store_true", help="replace this benchmark's section of "
                        "docs/benchmarks.md")


def run_from_arguments(kind: Kind, args: argparse.Namespace) -> list[Comparison]:
    if args.quick:
        args.rounds, args.seconds = 2, 2.0
    comparisons = []
    for store in stores_of(args.store):
        with store_backend(store, redis_url=args.redis_url) as store_env:
            comparisons.append(run_comparison(kind, rounds=args.rounds, seconds=args.seconds,
                                              connections=args.connections, store=store, redis_url=args.redis_url,
                                              store_env=store_env))
    return comparisons


# -- screening and routing: the same gateway with and without its rules, and the bare endpoint --------------

RULES_SIDES = ("rules", "no-rules", "bare")


@dataclass
class RulesComparison:
    """One store and payload mix: the gateway with the shipped jurisdiction and routing rules, the same gateway
    without them (bench.common.rules_mix.rules_off_files) and the bare endpoint, in alternating rounds."""

    store: str
    mix: str
    sides: dict[str, Side]
    connections: int
    seconds: float
    load_start: str
    load_end: str = ""

    def ratio(self, side: str, against: str) -> float:
        return self.sides[side].total.rate / self.sides[against].total.rate

    def round_ratios(self, side: str, against: str) -> list[float]:
        return [a.rate / b.rate for a, b in zip(self.sides[side].rounds, self.sides[against].rounds, strict=True)
                if b.rate]

    @property
    def cpu_cost(self) -> float:
        """Server CPU per request with the rules over without, minus one: the share the rules add."""
        return self.sides["rules"].total.cpu_ms_per_request / self.sides["no-rules"].total.cpu_ms_per_request - 1

    def lines(self) -> list[str]:
        lines = [f"REST intake on {self.store}, {self.mix} payloads: {len(self.sides['bare'].rounds)} rounds x "
                 f"{self.seconds:g} s each side, {self.connections} connections"]
        for name in RULES_SIDES:
            t = self.sides[name].total
            lines.append(f"  {name:8}: {t.rate:8,.0f} req/s  p50 {t.p50_ms:6.1f} ms  p99 {t.p99_ms:6.1f} ms  "
                         f"CPU {t.cpu_ms_per_request:5.2f} ms/req  {dict(t.statuses)}")
        for side, against in (("rules", "no-rules"), ("rules", "bare"), ("no-rules", "bare")):
            ratios = self.round_ratios(side, against)
            lines.append(f"  {side} / {against}: {self.ratio(side, against):5.2f}  (rounds {min(ratios):.2f}-"
                         f"{max(ratios):.2f}, median {statistics.median(ratios):.2f})")
        lines.append(f"  CPU per request, rules / no-rules: {self.cpu_cost:+.1%}")
        return lines


def run_rules_comparison(*, rounds: int, seconds: float, connections: int, mixes: tuple[Mix, ...],
                         store: str = "sqlite", redis_url: str | None = None,
                         redis_url_without: str | None = None) -> list[RulesComparison]:
    """Start the bare endpoint and two gateways (workers off) on the same store kind, one with the shipped
    rules, one without; per payload mix, alternate load over the three. On Redis each gateway has a database of
    its own (`redis_url`, `redis_url_without`), as each has a file of its own on SQLite."""
    with tempfile.TemporaryDirectory(prefix="bench-rules-") as tmp:
        base = Path(tmp)
        jurisdiction_off, routing_off = rules_off_files(base / "config")
        # No credit look-up on either: the demo's points at 127.0.0.1:8414, and whatever answers there on a shared
        # machine (another checkout's demo) would give the rules' gateway credit flags to route on.
        same = {"HIG_CREDIT_LOOKUP__URL": ""}
        with_rules = gateway_env(base / "data-rules", store=store, redis_url=redis_url, workers=False, store_env=same)
        without = gateway_env(base / "data-no-rules", store=store, redis_url=redis_url_without or redis_url,
                              workers=False,
                              store_env=same)
        comparisons = []
        baseline = start_baseline(base)
        try:
            ruled = start_gateway(with_rules, base, name="gateway-rules")
            try:
                plain = start_gateway(without, base, name="gateway-no-rules",
                                      HIG_JURISDICTION_FILE=str(jurisdiction_off), HIG_ROUTING_FILE=str(routing_off))
                try:
                    index = 0
                    for mix in mixes:
                        tag = payloads.run_tag()
                        load_start = machine_load()
                        sides = [("rules", ruled, rules_mix_factory(mix, tag, with_rules)),
                                 ("no-rules", plain, rules_mix_factory(mix, tag, without)),
                                 ("bare", baseline, rules_mix_factory(mix, tag, None))]
                        measured, index = asyncio.run(alternate_sides(sides, rounds=rounds, seconds=seconds,
                                                                      connections=connections, start_index=index))
                        comparison = RulesComparison(store, mix, measured, connections, seconds, load_start,
                                                     machine_load())
                        for line in comparison.lines():
                            print(line)
                        comparisons.append(comparison)
                finally:
                    plain.stop()
            finally:
                ruled.stop()
        finally:
            baseline.stop()
        return comparisons


def rules_mix_factory(mix: Mix, tag: str, genv: GatewayEnv | None) -> RequestFactory:
    """Request i of a mix to a gateway (with its partner key), or to the bare endpoint when `genv` is None."""
    if genv is None:
        bare_headers = {"Content-Type": "application/json"}

        def bare(i: int) -> tuple[str, dict[str, str], bytes]:
            return payloads.BASE_CITY_PATH, bare_headers, rules_mix.city_body(mix, tag, i)

        return bare
    headers = {"Content-Type": "application/json", "X-Api-Key": genv.env["PARTNER_CITY12345_API_KEY"]}

    def gateway(i: int) -> tuple[str, dict[str, str], bytes]:
        return payloads.CITY_PATH, headers, rules_mix.city_body(mix, tag, i)

    return gateway
