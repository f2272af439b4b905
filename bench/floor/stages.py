"""In process: CPU per push of each pure stage of a REST intake, on the benchmark's own tickets (a new consumer each).

The stages as `IntakeService` runs them, without the store: the JSON body parsed, the declarative mapping, the
jurisdiction screen, handler + deadlines + the screen's decision (`prepare`), the routing rules' 退单 check and
the outbox (routes, the ticket's JSON, each delivery's body), and the ticket's log line through the gateway's
formatter. Timed in the measuring thread's CPU time (`time.thread_time`), best of `--repeat` passes of `--n`
tickets each: on a shared machine, what other processes take is not counted.

  .venv/bin/python -m bench.floor.stages [--n 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from bench.common import payloads
from bench.common.procs import gateway_env
from contracts.ticket import Ticket
from gateway.config import load_settings
from gateway.logs import JsonLineFormatter
from gateway.runtime import load_components
from gateway.store.base import Store
from gateway.tickets.intake import IntakeService
from mapping.engine import Mapped


def best(repeat: int, n: int, step: Callable[[int], object]) -> float:
    """µs per call, the best of `repeat` passes of `n` calls."""
    times = []
    for _ in range(repeat):
        started = time.thread_time()
        for i in range(n):
            step(i)
        times.append((time.thread_time() - started) / n * 1e6)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-stages-") as tmp:
        import os

        os.environ.update(gateway_env(Path(tmp), store="sqlite").env)
        settings = load_settings()
        components = load_components(settings)
    intake = IntakeService(cast(Store, None), components.specs, components.router, components.rules,
                           components.calendar, jurisdiction=components.jurisdiction)
    adapter = payloads.CITY_ADAPTER
    tag = payloads.run_tag()
    bodies = [payloads.city_body(tag, i) for i in range(args.n)]
    docs: list[Any] = [json.loads(b) for b in bodies]
    mapped: list[Ticket] = []
    for doc in docs:
        result = intake.map(adapter, doc)
        if not isinstance(result, Mapped):
            raise SystemExit(f"a benchmark ticket does not map: {result}")
        mapped.append(result.ticket)
    decisions = [intake.screen(t) for t in mapped]
    prepared = [intake.prepare(t, d) for t, d in zip(mapped, decisions, strict=True)]
    formatter = JsonLineFormatter()

    def log_line(i: int) -> str:
        record = logging.LogRecord("gateway.tickets.intake", logging.INFO, __file__, 1, "ticket stored", None, None)
        record.ticket_id = prepared[i].ticket_id
        record.adapter_id = adapter
        return formatter.format(record)

    stages: dict[str, Callable[[int], object]] = {
        "parse JSON body": lambda i: json.loads(bodies[i]),
        "mapping (mapping.apply)": lambda i: intake.map(adapter, docs[i]),
        "jurisdiction screen": lambda i: intake.screen(mapped[i]),
        "handler + deadlines + decision (prepare)": lambda i: intake.prepare(mapped[i], decisions[i]),
        "routing 退单 check + outbox (routes, JSON, bodies)": lambda i: (
            components.router.returned(prepared[i]), components.router.intake_outbox(prepared[i])),
        "log line (JsonLineFormatter)": log_line,
    }
    total = 0.0
    for name, step in stages.items():
        us = best(args.repeat, args.n, step)
        total += us
        print(f"{name:52} {us:8.1f} µs")
    print(f"{'sum':52} {total:8.1f} µs")


if __name__ == "__main__":
    main()
