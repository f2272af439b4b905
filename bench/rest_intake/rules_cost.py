"""In process: microseconds per ticket of the jurisdiction screen and of routing, on the screening benchmark's
payload mixes (bench/common/rules_mix.py), with the shipped rules and without them.

Each step is timed as intake runs it, on the tickets intake gives it: the screen on the mapped ticket; the
handler look-up on the mapped ticket; routing and the outbox (`Router.returned`, then `Router.intake_outbox`:
the routes, the ticket's JSON as stored and forwarded, each delivery's body) on the ticket with its handler,
deadlines and jurisdiction decision — so that what the rules add includes the larger ticket they leave (the
decision's evidence, each route with its evidence) and a routed ticket's second delivery. The screen normalises
a fresh ticket's text (the cache of normalised texts is emptied before each call, as a new ticket's strings
would miss it); routing then finds them normalised, as it does at intake. Timed in CPU time of the measuring
thread (`time.thread_time`: on a shared machine, time other processes take is not counted), best of `--repeat`
passes over the mix, each pass at least `--n` calls.

Run from the repository root:  .venv/bin/python -m bench.rest_intake.rules_cost [--n 2000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from bench.common import rules_mix
from bench.common.payloads import CITY_ADAPTER
from contracts.ticket import Ticket
from gateway.config import load_settings
from gateway.runtime import load_components
from gateway.store.base import Store
from gateway.tickets.intake import IntakeService, with_jurisdiction
from gateway.tickets.jurisdiction import JurisdictionRules, screen
from gateway.tickets.routing import Router
from gateway.tickets.text import normalise
from mapping.engine import Mapped, apply

STEPS = ("map", "screen", "screen-off", "handler", "routing", "routing-off")
LABELS = {
    "map": "mapping (`mapping.apply`, for scale)",
    "screen": "jurisdiction screen, shipped rules",
    "screen-off": "jurisdiction screen, no rules (what the gateway without rules still runs)",
    "handler": "handler look-up (`Router.assign_handler`, the same on both gateways)",
    "routing": "routing and outbox, shipped rules (`returned` + `intake_outbox`: routes, ticket JSON, bodies)",
    "routing-off": "routing and outbox without the content rules",
}


@dataclass(frozen=True)
class MixCost:
    mix: str
    tickets: int
    routed: int  # tickets the shipped routing rules route to a side lane
    decided_by_rule: int  # tickets a jurisdiction rule (not the default) decided
    us: dict[str, float]  # µs per ticket, by step

    @property
    def rules_us(self) -> float:
        """What the rules add per ticket: screen and routing with the rules, minus without them."""
        return self.us["screen"] - self.us["screen-off"] + self.us["routing"] - self.us["routing-off"]

    @property
    def screening_and_routing_us(self) -> float:
        """Screen, handler look-up and routing with the shipped rules: all of it."""
        return self.us["screen"] + self.us["handler"] + self.us["routing"]


def _per_call_us(function: Callable[[Any], object], items: list[Any], n: int, repeat: int) -> float:
    calls = max(n, len(items))
    batch = [items[i % len(items)] for i in range(calls)]
    best = float("inf")
    for _ in range(repeat):
        started = time.thread_time()
        for item in batch:
            function(item)
        best = min(best, time.thread_time() - started)
    return best / calls * 1e6


def measure(*, n: int = 2000, repeat: int = 7, mixes: tuple[rules_mix.Mix, ...] = rules_mix.MIXES) -> list[MixCost]:
    components = load_components(load_settings())
    spec = components.specs[CITY_ADAPTER]
    with tempfile.TemporaryDirectory(prefix="bench-rules-cost-") as tmp:
        jurisdiction_file, routing_file = rules_mix.rules_off_files(Path(tmp))
        rules_off = JurisdictionRules.from_file(jurisdiction_file)
        router_off = Router.from_files(routing_file, components.settings.region.code)
    rules, router = components.jurisdiction, components.router
    intake = IntakeService(cast(Store, None), components.specs, router, components.rules, components.calendar)
    results = []
    for mix in mixes:
        payloads = [rules_mix.city_payload(mix, "COST", i) for i in range(len(rules_mix.texts(mix)))]
        mapped = []
        for payload in payloads:
            result = apply(spec, payload)
            if not isinstance(result, Mapped):
                raise SystemExit(f"{payload['appealTitle']}: does not map ({type(result).__name__})")
            mapped.append(result.ticket)
        decisions = [screen(t, rules) for t in mapped]
        if any(d.outcome != "accept" for d in decisions):
            raise SystemExit(f"the {mix} mix holds tickets the screen does not accept: not the path measured")
        routed_in = [with_jurisdiction(intake.prepare(t), d) for t, d in zip(mapped, decisions, strict=True)]
        off_in = [with_jurisdiction(intake.prepare(t), screen(t, rules_off)) for t in mapped]

        def routing(ticket: Ticket, by: Router = router) -> object:
            by.returned(ticket)
            return by.intake_outbox(ticket)

        us = {
            "map": _per_call_us(lambda p: apply(spec, p), payloads, n, repeat),
            "screen": _per_call_us(lambda t: (normalise.cache_clear(), screen(t, rules)), mapped, n, repeat),
            "screen-off": _per_call_us(lambda t: (normalise.cache_clear(), screen(t, rules_off)), mapped, n, repeat),
            "handler": _per_call_us(router.assign_handler, mapped, n, repeat),
            "routing": _per_call_us(routing, routed_in, n, repeat),
            "routing-off": _per_call_us(lambda t: routing(t, router_off), off_in, n, repeat),
        }
        routed = sum(1 for t in routed_in if router.intake_routes(t)[1])
        results.append(MixCost(mix, len(mapped), routed, sum(1 for d in decisions if d.rule_id != "default"), us))
    return results


def lines(costs: list[MixCost]) -> list[str]:
    out = []
    for c in costs:
        out.append(f"{c.mix} mix: {c.tickets} distinct tickets, {c.decided_by_rule} decided by a jurisdiction rule, "
                   f"{c.routed} routed to a side lane")
        out += [f"  {step:12} {c.us[step]:8.1f} µs/ticket" for step in STEPS]
        out.append(f"  rules add   {c.rules_us:8.1f} µs/ticket (screen + routing, with minus without)")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="calls per pass")
    parser.add_argument("--repeat", type=int, default=7, help="passes; the best is kept")
    args = parser.parse_args()
    for line in lines(measure(n=args.n, repeat=args.repeat)):
        print(line)


if __name__ == "__main__":
    main()
