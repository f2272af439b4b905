"""In process: what one alert round costs on a SQLite store of N tickets, against one refresh of the dashboard's live
part (`Board.dashboard`, what an open /ops page asks for every 10 s) measured in the same run.

A round: the store check, the `alerts` lock, every standard rule (lane counts, breakers, pollers, quarantine
counts, the deadline counts and their examples), the firing alerts compared and saved. Best of `--repeat` of
each step, the steps taken in turn, after one round that fires the alerts (every bench ticket is overdue).

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
from gateway.ops.board import Board
from gateway.ops.counts import MinuteCounts
from gateway.runtime import Runtime, load_components
from gateway.store.base import Store


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


def monitor(store: Store, settings: Any, components: Any) -> AlertMonitor:
    config = AlertsConfig()
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
            alerts = monitor(store, settings, components)
            await alerts.evaluate()  # fires the overdue alert once

            runtime = Runtime.build(settings, store=store)
            board = Board(runtime, MinuteCounts(store), lambda: datetime.now(UTC))
            return await best_ms({"baseline": board.dashboard, "round": alerts.evaluate}, repeat)
        finally:
            await store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    ms = asyncio.run(run(args.tickets, args.repeat))
    # The defaults: a round every 30 s (120 an hour).
    print(f"tickets in the store: {args.tickets}")
    print(f"one refresh of the dashboard's live part (baseline): {ms['baseline']:.2f} ms")
    print(f"alert round: {ms['round']:.2f} ms ({ms['round'] / ms['baseline']:.2f} x baseline)")
    print(f"per hour at the defaults: {120 * ms['round'] / 1000:.2f} s of one core "
          f"({120 * ms['round'] / 36_000:.4f} % of it)")

if __name__ == "__main__":
    main()
