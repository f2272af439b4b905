"""REST intake with duplicate linking on against the same gateway with it off, in alternating rounds of one run.

Two gateways (`python main.py serve`, delivery workers off), same store kind, one with the shipped `links`
settings and one with HIG_LINKS__ENABLED=false (nothing indexed, nothing looked up). Every request is a new city
12345 ticket (fixture 01) from a consumer of its own (phone and ID number) about one of 2,000 shops (USCC, name);
one in twenty is the consumer of three requests earlier again, about the same shop and matter: a duplicate, which
the gateway with linking on links (and shows on the earlier ticket). Target: on / off ≥ 0.90.

Run from the repository root:  .venv/bin/python -m bench.links.intake [--quick] [--store both] [--write-docs]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

from bench.common import payloads
from bench.common.intake import Side, add_arguments, alternate_sides
from bench.common.load import RequestFactory
from bench.common.procs import GatewayEnv, gateway_env, machine_load, next_redis_db, redis_db, start_gateway
from bench.common.report import machine, write_section
from bench.links.lookup import uscc
from contracts.identifiers.resident_id import resident_id_check_char

TITLE = "Duplicate links: intake with linking on and off"
TARGET = 0.90
SHOPS = 2000
DUPLICATE_EVERY = 20
COMMAND = ".venv/bin/python -m bench.links.intake --store both --write-docs"
SIDES = ("on", "off")


def consumer_of(i: int) -> int:
    """Request i's consumer: its own, or for every twentieth the one three requests earlier (a duplicate)."""
    return consumer_of(i - 3) if i % DUPLICATE_EVERY == DUPLICATE_EVERY - 1 and i >= 3 else i


def resident_id(n: int) -> str:
    """Consumer n's ID number, no other's (below 9,000,000: born by 1974): born n // 1000 days after 1950-01-01,
    sequence n % 1000. (Built from n's remainders, it repeated every 21,000 consumers, and one shop in two of those
    was the same: past 42,000 requests most tickets of the side with linking on were linked, not one in ten.)"""
    born = date(1950, 1, 1) + timedelta(days=n // 1000)
    first17 = f"522601{born:%Y%m%d}{n % 1000:03d}"
    return first17 + resident_id_check_char(first17)


def city_body(tag: str, i: int) -> bytes:
    c = consumer_of(i)
    shop = c % SHOPS
    ticket = {**payloads.CITY_TICKET, "hotlineNo": f"KL12345-{tag}-{i:09d}", "contactPhone": f"139{c % 10**8:08d}",
              "contactIdCard": resident_id(c),
              "respondent": {**payloads.CITY_TICKET["respondent"], "creditCode": uscc(shop),
                             "name": f"凯里市第{shop}号商店"}}
    return json.dumps(ticket, ensure_ascii=False).encode("utf-8")


def factory(genv: GatewayEnv, tag: str) -> RequestFactory:
    headers = {"Content-Type": "application/json", "X-Api-Key": genv.env["PARTNER_CITY12345_API_KEY"]}

    def make(i: int) -> tuple[str, dict[str, str], bytes]:
        return payloads.CITY_PATH, headers, city_body(tag, i)

    return make


@dataclass
class OnOff:
    store: str
    sides: dict[str, Side]
    connections: int
    seconds: float
    load_start: str
    load_end: str = ""

    @property
    def ratio(self) -> float:
        return self.sides["on"].total.rate / self.sides["off"].total.rate

    @property
    def round_ratios(self) -> list[float]:
        return [a.rate / b.rate for a, b in zip(self.sides["on"].rounds, self.sides["off"].rounds, strict=True)
                if b.rate]

    @property
    def cpu_cost(self) -> float:
        return self.sides["on"].total.cpu_ms_per_request / self.sides["off"].total.cpu_ms_per_request - 1

    def lines(self) -> list[str]:
        lines = [f"REST intake on {self.store}, links on / off: {len(self.sides['on'].rounds)} rounds x "
                 f"{self.seconds:g} s each side, {self.connections} connections"]
        for name in SIDES:
            t = self.sides[name].total
            lines.append(f"  {name:3}: {t.rate:8,.0f} req/s  p50 {t.p50_ms:6.1f} ms  p99 {t.p99_ms:6.1f} ms  "
                         f"CPU {t.cpu_ms_per_request:5.2f} ms/req  {dict(t.statuses)}")
        r = self.round_ratios
        lines.append(f"  on / off: {self.ratio:5.2f} (rounds {min(r):.2f}-{max(r):.2f}, median "
                     f"{statistics.median(r):.2f}); CPU per request {self.cpu_cost:+.1%}")
        return lines


def run_store(store: str, *, rounds: int, seconds: float, connections: int, redis_url: str | None,
              redis_url_off: str | None = None) -> OnOff:
    """On Redis each gateway has a database of its own (`redis_url`, `redis_url_off`), as each has a file of its
    own on SQLite: sharing one, only the first started ran the alert monitor's rounds, for both."""
    with tempfile.TemporaryDirectory(prefix="bench-links-intake-") as tmp:
        base = Path(tmp)
        on_env = gateway_env(base / "data-on", store=store, redis_url=redis_url, workers=False)
        off_env = gateway_env(base / "data-off", store=store, redis_url=redis_url_off or redis_url, workers=False)
        on = start_gateway(on_env, base, name="gateway-links-on")
        try:
            off = start_gateway(off_env, base, name="gateway-links-off", HIG_LINKS__ENABLED="false")
            try:
                tag = payloads.run_tag()
                load_start = machine_load()
                # One request index across both sides: each side's duplicates are of its own earlier tickets.
                sides, _ = asyncio.run(alternate_sides([("on", on, factory(on_env, tag)),
                                                        ("off", off, factory(off_env, tag))],
                                                       rounds=rounds, seconds=seconds, connections=connections))
            finally:
                off.stop()
        finally:
            on.stop()
        result = OnOff(store, sides, connections, seconds, load_start, machine_load())
        for line in result.lines():
            print(line)
        return result


def table(results: list[OnOff]) -> str:
    lines = ["| store | links on: req/s, CPU per request | links off: req/s, CPU per request | "
             "**on / off** (all rounds) | per-round (median) | CPU per request, on / off |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in results:
        cells = [f"{r.sides[s].total.rate:,.0f}, {r.sides[s].total.cpu_ms_per_request:.2f} ms" for s in SIDES]
        rounds = r.round_ratios
        lines.append(f"| {r.store} | {' | '.join(cells)} | **{r.ratio:.2f}** | {min(rounds):.2f}–{max(rounds):.2f} "
                     f"({statistics.median(rounds):.2f}) | {r.cpu_cost:+.0%} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.seconds = 2, 2.0
    results = []
    for store in ("sqlite", "redis") if args.store == "both" else (args.store,):
        if store == "redis":
            off_url = next_redis_db(args.redis_url)  # each gateway a database of its own (both must be empty)
            with redis_db(args.redis_url), redis_db(off_url):
                results.append(run_store(store, rounds=args.rounds, seconds=args.seconds,
                                         connections=args.connections, redis_url=args.redis_url,
                                         redis_url_off=off_url))
        else:
            results.append(run_store(store, rounds=args.rounds, seconds=args.seconds, connections=args.connections,
                                     redis_url=None))
    if args.write_docs:
        write_section(TITLE, f"""## {TITLE}

Issue 16 (part 4): duplicate linking at intake may cost at most 10 % of intake throughput (on / off ≥ {TARGET:.2f}).
`bench/links/intake.py` runs two gateways at once, each as `python main.py serve` runs it (delivery workers off),
on the same store kind: one with the shipped `links` settings, one with `HIG_LINKS__ENABLED=false` (no marks
indexed, no look-up); the load generator drives one at a time in alternating rounds ({args.connections} keep-alive
connections, {args.rounds} rounds of {args.seconds:g} s per side after a 1 s warm-up). Every request is a new city
12345 ticket (fixture 01) from a consumer of its own (phone, ID number) about one of {SHOPS:,} shops; one in
{DUPLICATE_EVERY} is the consumer of three requests earlier again, same shop and matter, which the gateway with
linking on links (one look-up per ticket; for a duplicate also the earlier ticket read, scored and saved with the
link back).

{table(results)}

"CPU per request" is the server process's user + system CPU over its rounds divided by the requests it answered:
steadier than req/s on this shared machine.

Machine: {machine(results[0].load_start, results[-1].load_end)}.

Reproduce: `{COMMAND}` (`--quick` for a CI-sized run; `--rounds`, `--seconds`, `--connections`).
""")


if __name__ == "__main__":
    main()
