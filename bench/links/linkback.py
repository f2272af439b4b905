"""What a duplicate storm's links back cost an intake on SQLite: one store write for all of them against one
read-modify-save per earlier ticket (how `Linker.link_back` wrote them before issue 16's performance pass).

Each round stores `links` earlier tickets of one matter (not timed), then shows a new ticket's links on them, by
each way in turn on its own earlier tickets (alternating, so both share the machine's load). The store is a
gateway's (acknowledged writes at synchronous=FULL, as intake's). Median and p90 milliseconds per intake.

Run from the repository root:  .venv/bin/python -m bench.links.linkback [--rounds 200] [--links 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from bench.common.fill import TicketMaker, settings_for, ticket_maker
from bench.common.procs import gateway_env, machine_load
from contracts.ticket import LINKS_KEPT, Ticket, TicketLink
from gateway.config import LinkSettings
from gateway.store.records import with_link_back
from gateway.store.sqlite import SqliteStore
from gateway.tickets.links import links_back
from gateway.tickets.updates import TicketChange, update_ticket

KEY = b"bench-linkback-phone-hash-key"
LinkBack = Callable[[SqliteStore, Ticket, int], Awaitable[None]]


async def in_one_write(store: SqliteStore, ticket: Ticket, most: int) -> None:
    await store.add_links_back(links_back(ticket), most=most)


async def one_by_one(store: SqliteStore, ticket: Ticket, most: int) -> None:
    """Before: each earlier ticket read, changed and saved on its own, through the update seam."""
    for other_id, back in links_back(ticket).items():
        def add(other: Ticket, back: TicketLink = back) -> tuple[bool, TicketChange | None]:
            shown = with_link_back(other, back, most)
            return (False, None) if shown is None else (True, TicketChange(shown))

        await update_ticket(store, other_id, add)


def linking(new: Ticket, earlier: list[Ticket]) -> Ticket:
    at = new.source.source_received_at
    return new.model_copy(update={"links": [
        TicketLink(ticket_id=t.ticket_id, adapter_id=t.source.adapter_id, source_ticket_no=t.source.source_ticket_no,
                   received_at=t.source.source_received_at, score=0.9, similarity=0.9, days_apart=0.0,
                   reasons=["同一投诉人（联系电话相同）"], linked_at=at) for t in earlier]})


async def measure(store: SqliteStore, maker: TicketMaker, rounds: int, links: int) -> dict[str, list[float]]:
    most = min(LINKS_KEPT, 2 * LinkSettings().max_links)
    ways: dict[str, LinkBack] = {"one write": in_one_write, "one by one": one_by_one}
    ms: dict[str, list[float]] = {name: [] for name in ways}
    i = 0
    for _ in range(rounds):
        for name, way in ways.items():
            earlier = []
            for _ in range(links):
                ticket, raw, outbox = maker.intake_args(i)
                i += 1
                await store.intake(ticket, raw, "application/json", outbox)
                earlier.append(ticket)
            new = linking(maker.ticket(i), earlier)
            i += 1
            began = time.perf_counter()
            await way(store, new, most)
            ms[name].append((time.perf_counter() - began) * 1000)
    return ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--links", type=int, default=LinkSettings().max_links, help="earlier tickets linked")
    args = parser.parse_args()
    load_start = machine_load()
    with tempfile.TemporaryDirectory(prefix="bench-linkback-") as tmp:
        maker = ticket_maker(settings_for(gateway_env(Path(tmp) / "env", log_level="WARNING").env), "B")

        async def run() -> dict[str, list[float]]:
            store = SqliteStore(Path(tmp) / "gateway.db", KEY)
            await store.open()
            try:
                return await measure(store, maker, args.rounds, args.links)
            finally:
                await store.close()

        ms = asyncio.run(run())
    for name, values in ms.items():
        print(f"{name}: median {statistics.median(values):.2f} ms, p90 {statistics.quantiles(values, n=10)[8]:.2f} ms"
              f" per intake's {args.links} links back ({len(values)} intakes)")
    one, before = statistics.median(ms["one write"]), statistics.median(ms["one by one"])
    print(f"ratio one write / one by one (medians): {one / before:.2f}")
    print(f"load: {load_start} at the start, {machine_load()} at the end")


if __name__ == "__main__":
    main()
