"""In process: what one alert round costs on a SQLite store of N tickets, against the dashboard's own read of
deadline risks (the same scan of the newest 2,000 tickets) measured in the same run.

A round: the store check, the `alerts` lock, every standard rule (lane counts, breakers, pollers, quarantine
counts, and the deadline scan when it is due), the firing alerts compared and saved. Best of `--repeat` rounds
each way, after one round that fires the alerts (every bench ticket is overdue: one `ticket_overdue` alert).

Run from the repository root:  .venv/bin/python -m bench.alerts.round_cost [--tickets 5000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.common.fill import fill, open_bench_store, ticket_maker
from gateway.alerts import AlertMonitor, AlertsConfig
from gateway.alerts.rules import standard_rules
from gateway.config import load_settings
from gateway.runtime import load_components
from gateway.store.base import Store
from gateway.tickets.risk import tickets_at_risk


async def best_ms(steps: dict[str, Callable[[], Awaitable[Any]]], repeat: int) -> dict[str, float]:
    """Best time of each step in ms, the steps taken in turn (A B C, A B C, …) so that the machine's load
    falls on all of them alike."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeat):
        for name, step in steps.items():
            began = time.perf_counter()
            await step()
            times[name].append(time.perf_counter() - began)
    return {name: min(t) * 1000 for name, t in times.items()}


def monitor(store: Store, settings: Any, components: Any, scan_every: float) -> AlertMonitor:
    config = AlertsConfig.model_validate({"deadline_scan_every": scan_every})
    rules = standard_rules(config, store, breakers=dict, pollers=dict,
                           adapter_ids=lambda: sorted(components.adapter_configs),
                           deadline_basis=lambda: (components.calendar, settings.deadlines.due_soon_working_days))
    return AlertMonitor(config, store, rules, region=settings.region.name, owner="bench")


async def run(tickets: int, repeat: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings().model_copy(update={"data_dir": Path(tmp)})
        settings.resolved_data_dir.mkdir(parents=True, exist_ok=True)
        store = open_bench_store(settings)
        await store.open()
        try:
            await fill(store, ticket_maker(settings, "ALERTS"), tickets)
            components = load_components(settings)
            calendar, within = components.calendar, settings.deadlines.due_soon_working_days
            scanning = monitor(store, settings, components, 1e-6)  # the deadline scan in every round
            cached = monitor(store, settings, components, 1e9)  # the scan's last facts stand
            for m in (scanning, cached):
                await m.evaluate()  # fires the overdue alert once
            return await best_ms({
                "baseline": lambda: tickets_at_risk(store, datetime.now(UTC), calendar, due_soon_within=within),
                "with_scan": scanning.evaluate,
                "without_scan": cached.evaluate,
            }, repeat)
        finally:
            await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    ms = asyncio.run(run(args.tickets, args.repeat))
    # The defaults: a round every 30 s, the deadline scan every 5 min (12 of the 120 rounds of an hour).
    per_hour = 12 * ms["with_scan"] + 108 * ms["without_scan"]
    print(f"tickets in the store: {args.tickets}")
    print(f"dashboard's deadline read (baseline): {ms['baseline']:.1f} ms")
    print(f"alert round with the deadline scan: {ms['with_scan']:.1f} ms "
          f"({ms['with_scan'] / ms['baseline']:.2f} x baseline)")
    print(f"alert round without it: {ms['without_scan']:.2f} ms ({ms['without_scan'] / ms['baseline']:.3f} x baseline)")
    print(f"per hour at the defaults: {per_hour / 1000:.2f} s of one core ({per_hour / 36_000:.3f} % of it; "
          f"{per_hour / (120 * ms['baseline']):.2f} x the dashboard's read every 30 s)")


if __name__ == "__main__":
    main()
