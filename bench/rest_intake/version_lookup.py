"""In process, on the SQLite store: what looking up a ticket's source number at intake costs (every mapped ticket is
looked up, so that an older version come late is a repeat rather than a second ticket), against the whole intake of
a new ticket in the same run.

The store first takes `--stored` new city 12345 tickets through intake. Then, alternating `--repeat` passes: the
look-up alone (`known_ticket` of a number not stored: a new ticket's case), the look-up as it was before the store
kept the numbers (`search_tickets` by source number, newest 20, parsed), and whole intakes of new tickets (mapping,
the screen, handler, deadlines, routing, the look-up, the store's write and its outbox). Best pass of each, as wall
time and as this process's CPU time (the store thread's included).

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
from gateway.store import TicketQuery
from gateway.store.sqlite import SqliteStore
from gateway.tickets.followups import known_ticket
from gateway.tickets.intake import IntakeService

SOURCE_SYSTEM = "city-12345"


Timing = tuple[float, float]  # wall, CPU: µs per call


def _timer() -> tuple[float, float]:
    return time.perf_counter(), time.process_time()


def _per_call(started: tuple[float, float], count: int) -> Timing:
    wall, cpu = _timer()
    return (wall - started[0]) / count * 1e6, (cpu - started[1]) / count * 1e6


async def _intake(intake: IntakeService, tag: str, first: int, count: int) -> Timing:
    started = _timer()
    for i in range(first, first + count):
        payload = city_ticket(tag, i)
        outcome = await intake.accept(CITY_ADAPTER, payload, raw_body=json.dumps(payload).encode(),
                                      content_type="application/json")
        if outcome.kind != "created":
            raise SystemExit(f"ticket {i}: {outcome.kind}, not created: not the path measured")
    return _per_call(started, count)


async def _lookups(intake: IntakeService, tag: str, count: int) -> Timing:
    started = _timer()
    for i in range(count):
        if await known_ticket(intake.store, SOURCE_SYSTEM, f"{tag}-MISS-{i}") is not None:
            raise SystemExit("a number never stored was found")
    return _per_call(started, count)


async def _searches(intake: IntakeService, tag: str, count: int) -> Timing:
    """The look-up before the store kept the numbers: the newest 20 tickets with the number, parsed."""
    started = _timer()
    for i in range(count):
        found = await intake.store.search_tickets(TicketQuery(source_ticket_no=f"{tag}-MISS-{i}", limit=20))
        if [t for t in found if t.source.source_system == SOURCE_SYSTEM]:
            raise SystemExit("a number never stored was found")
    return _per_call(started, count)


def _best(a: Timing, b: Timing) -> Timing:
    return min(a[0], b[0]), min(a[1], b[1])


async def measure(stored: int, n: int, repeat: int) -> tuple[Timing, Timing, Timing]:
    components = load_components(load_settings())
    with tempfile.TemporaryDirectory(prefix="bench-version-lookup-") as tmp:
        store = SqliteStore(Path(tmp) / "gateway.db", b"bench-version-lookup-key")
        await store.open()
        try:
            intake = IntakeService(store, components.specs, components.router, components.rules,
                                   components.calendar, jurisdiction=components.jurisdiction)
            tag = run_tag()
            await _intake(intake, tag, 0, stored)
            inf = float("inf"), float("inf")
            lookup, search, whole, taken = inf, inf, inf, stored
            for _ in range(repeat):
                lookup = _best(lookup, await _lookups(intake, f"{tag}-{taken}", n))
                search = _best(search, await _searches(intake, f"{tag}-{taken}", n))
                whole = _best(whole, await _intake(intake, tag, taken, n))
                taken += n
        finally:
            await store.close()
    return lookup, search, whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stored", type=int, default=20000, help="tickets stored before measuring")
    parser.add_argument("--n", type=int, default=500, help="calls per pass")
    parser.add_argument("--repeat", type=int, default=5, help="passes; the best of each is kept")
    args = parser.parse_args()
    lookup, search, whole = asyncio.run(measure(args.stored, args.n, args.repeat))
    print(f"stored tickets {args.stored}; best of {args.repeat} passes of {args.n}; µs per ticket, wall / CPU")
    print(f"  source-number look-up (source_numbers)   {lookup[0]:8.1f} / {lookup[1]:8.1f}")
    print(f"  look-up as before (search_tickets)       {search[0]:8.1f} / {search[1]:8.1f}")
    print(f"  whole intake (look-up included)          {whole[0]:8.1f} / {whole[1]:8.1f}")
    print(f"  look-up share of the intake's CPU        {lookup[1] / whole[1]:8.3f}")


if __name__ == "__main__":
    main()
