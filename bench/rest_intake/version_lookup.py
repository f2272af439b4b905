"""In process, on the SQLite store: what looking up a ticket's source number at intake costs (every mapped ticket is
looked up, so that an older version come late is a repeat rather than a second ticket), against the whole intake of
a new ticket in the same run.

The store first takes `--stored` new city 12345 tickets through intake. Then, alternating `--repeat` passes: the
look-up alone (`known_ticket` of a number not stored: a new ticket's case) and whole intakes of new tickets (mapping,
the screen, handler, deadlines, routing, the look-up, the store's write and its outbox). Best pass of each.

Run from the repository root:  .venv/bin/python -m bench.rest_intake.version_lookup [--stored 20000] [--n 500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from bench.common.payloads import CITY_ADAPTER, city_ticket, run_tag
from gateway.config import load_settings
from gateway.runtime import load_components
from gateway.store.sqlite import SqliteStore
from gateway.tickets.followups import known_ticket
from gateway.tickets.intake import IntakeService

SOURCE_SYSTEM = "city-12345"


async def _intake(intake: IntakeService, tag: str, first: int, count: int) -> float:
    started = time.perf_counter()
    for i in range(first, first + count):
        payload = city_ticket(tag, i)
        outcome = await intake.accept(CITY_ADAPTER, payload, raw_body=json.dumps(payload).encode(),
                                      content_type="application/json")
        if outcome.kind != "created":
            raise SystemExit(f"ticket {i}: {outcome.kind}, not created: not the path measured")
    return (time.perf_counter() - started) / count * 1e6


async def _lookups(intake: IntakeService, tag: str, count: int) -> float:
    started = time.perf_counter()
    for i in range(count):
        if await known_ticket(intake.store, SOURCE_SYSTEM, f"{tag}-MISS-{i}") is not None:
            raise SystemExit("a number never stored was found")
    return (time.perf_counter() - started) / count * 1e6


async def measure(stored: int, n: int, repeat: int) -> tuple[float, float]:
    components = load_components(load_settings())
    with tempfile.TemporaryDirectory(prefix="bench-version-lookup-") as tmp:
        store = SqliteStore(Path(tmp) / "gateway.db", b"bench-version-lookup-key")
        await store.open()
        try:
            intake = IntakeService(store, components.specs, components.router, components.rules,
                                   components.calendar, jurisdiction=components.jurisdiction)
            tag = run_tag()
            await _intake(intake, tag, 0, stored)
            lookup, whole, taken = float("inf"), float("inf"), stored
            for _ in range(repeat):
                lookup = min(lookup, await _lookups(intake, f"{tag}-{taken}", n))
                whole = min(whole, await _intake(intake, tag, taken, n))
                taken += n
        finally:
            await store.close()
    return lookup, whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stored", type=int, default=20000, help="tickets stored before measuring")
    parser.add_argument("--n", type=int, default=500, help="calls per pass")
    parser.add_argument("--repeat", type=int, default=5, help="passes; the best of each is kept")
    args = parser.parse_args()
    lookup, whole = asyncio.run(measure(args.stored, args.n, args.repeat))
    print(f"stored tickets {args.stored}; best of {args.repeat} passes of {args.n}")
    print(f"  source-number look-up  {lookup:8.1f} µs/ticket")
    print(f"  whole intake           {whole:8.1f} µs/ticket (look-up included)")
    print(f"  look-up share          {lookup / whole:8.3f}")


if __name__ == "__main__":
    main()
