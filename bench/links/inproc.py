"""Duplicate linking's cost in process: CPU per push through the gateway's ASGI app with linking on and off.

The pushes of bench/links/intake.py (a city 12345 ticket from a consumer of its own about one of 2,000 shops; with
`--duplicates`, one in twenty the consumer of three requests earlier again, a duplicate) handed to the app as
uvicorn would (bench/floor/inproc.py: the same middleware and fast path, `--concurrency` at a time so that the
store groups commits as under load), on an SQLite store of its own per side and round. Rounds alternate the sides
(on off, off on, ...); each side and round pushes consumers of its own (no phone number is parsed twice across
sides: the gateway remembers the numbers it normalised). Counted: the process's CPU (every thread, the store's
included) per push after a warm-up. No HTTP parsing or sockets, and no other process: the machine's load moves it
far less than the in-turn benchmark, and what it leaves out is the same for both sides.

Run from the repository root:  .venv/bin/python -m bench.links.inproc [--pushes 3000] [--rounds 4] [--duplicates]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sqlite3
import statistics
import tempfile
from pathlib import Path

from bench.common import payloads
from bench.floor.inproc import drive, gateway_app
from bench.links import intake as links_intake

SIDES = ("on", "off")
CONSUMERS_PER_RUN = 1_000_000  # each side and round its own consumers: request indexes this far apart


async def per_push(side: str, work: Path, *, first: int, pushes: int, warmup: int, concurrency: int) -> float:
    """µs of process CPU per push for one side, after `warmup` pushes."""
    saved = dict(os.environ)
    if side == "off":
        os.environ["HIG_LINKS__ENABLED"] = "false"
    try:
        tag = payloads.run_tag()
        async with gateway_app("rest", "sqlite", work, "", tag) as (app, _):
            headers = {"Content-Type": "application/json", "X-Api-Key": os.environ["PARTNER_CITY12345_API_KEY"]}

            def make(i: int) -> tuple[str, dict[str, str], bytes]:
                return payloads.CITY_PATH, headers, links_intake.city_body(tag, i)

            await drive(app, make, start=first, count=warmup, concurrency=concurrency)
            cpu, _, statuses = await drive(app, make, start=first + warmup, count=pushes, concurrency=concurrency)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if set(statuses) != {202}:
        raise SystemExit(f"linking {side}: not every push was accepted: {statuses}")
    return cpu / pushes * 1e6


def linked_tickets(work: Path) -> int:
    """Tickets the side's store holds with at least one link (a duplicate and the ticket it repeats: two each)."""
    (path,) = work.rglob("gateway.db")
    with contextlib.closing(sqlite3.connect(path)) as db:
        return int(db.execute("SELECT count(*) FROM tickets WHERE json_array_length(body, '$.links') > 0")
                   .fetchone()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pushes", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duplicates", action="store_true",
                        help="one push in twenty a duplicate of the one three before (else none is)")
    args = parser.parse_args()
    if not args.duplicates:
        links_intake.DUPLICATE_EVERY = 2 * CONSUMERS_PER_RUN  # never within a side's run
    us: dict[str, list[float]] = {side: [] for side in SIDES}
    run = 0
    for r in range(args.rounds):
        for side in SIDES if r % 2 == 0 else tuple(reversed(SIDES)):
            run += 1
            with tempfile.TemporaryDirectory(prefix="bench-links-inproc-") as tmp:
                cost = asyncio.run(per_push(side, Path(tmp), first=run * CONSUMERS_PER_RUN, pushes=args.pushes,
                                            warmup=args.warmup, concurrency=args.concurrency))
                linked = linked_tickets(Path(tmp))
            us[side].append(cost)
            print(f"  round {r + 1} linking {side:3}: {cost:6.0f} µs CPU per push, {linked} tickets linked", flush=True)
    on, off = statistics.median(us["on"]), statistics.median(us["off"])
    print(f"SQLite, {args.pushes} pushes x{args.concurrency} per side and round, "
          f"{'one in twenty' if args.duplicates else 'no'} duplicates: linking on {on:.0f} µs, off {off:.0f} µs "
          f"per push (medians of {args.rounds}): +{on - off:.0f} µs ({on / off - 1:+.1%})")


if __name__ == "__main__":
    main()
