"""Queued tickets made without HTTP: the city fixture mapped, routed and given deadlines once, then copied
under new numbers and stored with `Store.intake` (ticket, raw payload, national delivery), as intake does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from ulid import ULID

from bench.common.payloads import CITY_ADAPTER, CITY_TICKET, city_body
from contracts.delivery import OutboxEntry
from contracts.ticket import Ticket, idempotency_key_of
from gateway.config import GatewaySettings
from gateway.runtime import load_components
from gateway.store.base import Store
from gateway.tickets.intake import IntakeService
from gateway.tickets.routing import Router
from mapping.engine import Mapped, apply


@dataclass(frozen=True)
class TicketMaker:
    """Makes ticket i of a run: the prepared template under a new source number, ticket id and key."""

    template: Ticket
    router: Router
    tag: str

    def ticket(self, i: int) -> Ticket:
        number = f"KL12345-{self.tag}-{i:09d}"
        source = self.template.source.model_copy(update={"source_ticket_no": number})
        key = idempotency_key_of(source.source_system, number, source.source_version)
        return self.template.model_copy(update={"ticket_id": str(ULID()), "idempotency_key": key,
                                                "source": source})

    def intake_args(self, i: int) -> tuple[Ticket, bytes, list[OutboxEntry]]:
        ticket = self.ticket(i)
        ticket, _, outbox = self.router.intake_outbox(ticket)
        return ticket, city_body(self.tag, i), outbox


def ticket_maker(settings: GatewaySettings, tag: str) -> TicketMaker:
    components = load_components(settings)
    result = apply(components.specs[CITY_ADAPTER], CITY_TICKET)
    if not isinstance(result, Mapped):
        raise SystemExit(f"the city fixture does not map: {result}")
    intake = IntakeService(cast(Store, None), components.specs, components.router, components.rules,
                           components.calendar)
    return TicketMaker(intake.prepare(result.ticket), components.router, tag)


async def fill(store: Store, maker: TicketMaker, n: int, *, start: int = 0, concurrency: int = 64,
               progress: Callable[[int, float], None] | None = None, every: int = 50_000) -> float:
    """Store tickets start..start+n-1 with `concurrency` intakes in flight; the seconds it took."""
    began = time.perf_counter()
    queue = iter(range(start, start + n))
    done = 0

    async def worker() -> None:
        nonlocal done
        for i in queue:
            ticket, raw, outbox = maker.intake_args(i)
            await store.intake(ticket, raw, "application/json", outbox)
            done += 1
            if progress is not None and done % every == 0:
                progress(done, time.perf_counter() - began)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - began


def open_bench_store(settings: GatewaySettings, *, fast_fill: bool = True) -> Store:
    """The store a gateway with these settings opens (same file or Redis db, same phone-hash key).

    `fast_fill`: SQLite commits the fill at synchronous=NORMAL (a power cut is not what is measured here;
    the rows and the file are the same)."""
    from gateway.store import open_store
    from gateway.store.phone_hash import load_phone_hash_key
    from gateway.store.sqlite import SqliteStore

    key = load_phone_hash_key(settings.resolved_data_dir)
    if settings.store.kind == "sqlite":
        return SqliteStore(settings.sqlite_path, key, acknowledged_sync="NORMAL" if fast_fill else "FULL")
    return open_store(settings, phone_hash_key=key)


def settings_for(env: dict[str, str]) -> GatewaySettings:
    """The settings a gateway process started with `env` reads."""
    import os

    from gateway.config import load_settings

    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        return load_settings()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def data_files(settings: GatewaySettings) -> dict[str, int]:
    """Sizes in bytes of the SQLite file and its WAL."""
    path: Path = settings.sqlite_path
    return {p.name: p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists()}
