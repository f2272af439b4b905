"""The SQLite store's part of duplicate linking, alone: CPU per intake with link marks against without, in process.

Two stores of this checkout in one process (each its own file under a temporary directory), fed in alternating
chunks: "on" makes each ticket's link step as intake does (`intake_linking` with four marks, its relink storing the
ticket as it is, with no link: one in twenty tickets repeats the marks of the one three before), "off" a plain
`intake`. The tickets are built beforehand; the process's CPU (all threads) per intake is counted, so the
machine's other load moves it far less than a gateway's. No HTTP, mapping, scoring or links back: the store only.

Run from the repository root (any checkout):  .venv/bin/python -m bench.links.store_step [--tickets 4000]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from contracts.delivery import DeliveryKind, OutboxEntry
from contracts.ticket import Ticket
from gateway.store import LinkQuery, Relinked
from gateway.store.sqlite import SqliteStore
from tests.store.store_support import make_ticket

CHUNK = 200
DUPLICATE_EVERY = 20
WINDOW = timedelta(days=30)


def marks_of(i: int) -> tuple[str, ...]:
    """Request i's four link marks; every twentieth those of the request three before (a duplicate)."""
    c = i - 3 if i % DUPLICATE_EVERY == DUPLICATE_EVERY - 1 and i >= 3 else i
    return tuple(f"{who}|{what}" for who in (f"phone:+86139{c:08d}", f"id:52260119{c:010d}")
                 for what in (f"uscc:915201{c % 2000:012d}", f"name:凯里市第{c % 2000}号商店@522601"))


async def intake_on(store: SqliteStore, ticket: Ticket, body: str, marks: tuple[str, ...]) -> None:
    at = ticket.source.source_received_at
    outbox = [OutboxEntry(destination="national", kind=DeliveryKind.FORWARD, body=body.encode(), priority=1)]
    await store.intake_linking(ticket, b"{}", "application/json", outbox, LinkQuery(marks, at - WINDOW, at + WINDOW),
                               lambda _: Relinked(ticket, body, outbox, {}, 10), ticket_json=body, link_marks=marks)


async def intake_off(store: SqliteStore, ticket: Ticket, body: str, marks: tuple[str, ...]) -> None:
    outbox = [OutboxEntry(destination="national", kind=DeliveryKind.FORWARD, body=body.encode(), priority=1)]
    await store.intake(ticket, b"{}", "application/json", outbox, ticket_json=body)


async def run(tickets: int, base: Path) -> dict[str, float]:
    made = [make_ticket(f"SS-{i:07d}", phone="+8613985012345", respondent="凯里市惠民生活超市") for i in range(tickets)]
    work = [(t, t.model_dump_json(), marks_of(i)) for i, t in enumerate(made)]
    sides = {"on": intake_on, "off": intake_off}
    stores = {side: SqliteStore(base / f"{side}.db", b"store-step-phone-key") for side in sides}
    cpu = dict.fromkeys(sides, 0.0)
    for store in stores.values():
        await store.open()
    try:
        for start in range(0, tickets, CHUNK):
            for side, step in sides.items():
                began = time.process_time()
                for ticket, body, marks in work[start:start + CHUNK]:
                    await step(stores[side], ticket, body, marks)
                cpu[side] += time.process_time() - began
    finally:
        for store in stores.values():
            await store.close()
    return {side: seconds / tickets * 1e6 for side, seconds in cpu.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=4000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-store-step-") as tmp:
        us = asyncio.run(run(args.tickets, Path(tmp)))
    print(f"{args.tickets} tickets per side: CPU per intake on {us['on']:.0f} µs, off {us['off']:.0f} µs, "
          f"linking {us['on'] - us['off']:+.0f} µs")


if __name__ == "__main__":
    main()
