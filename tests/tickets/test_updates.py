"""A ticket update reads, changes and saves; when another writer saves first, it reads again and re-applies."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from contracts.codesets import Status
from contracts.delivery import OutboxEntry
from contracts.status import StatusEvent
from contracts.ticket import Ticket
from gateway.store.base import ConcurrentUpdate, Store
from gateway.store.sqlite import SqliteStore
from gateway.tickets.lifecycle import EventOutcome, apply_status_event
from gateway.tickets.updates import TicketChange, update_ticket
from tests.sample_tickets import make_ticket

PHONE_KEY = b"test-phone-hash-key"
RAW = b'{"gdbh":"KL20240611000123"}'


class RacedStore(SqliteStore):
    """The gateway's SQLite store, where after each of the first `races` reads of a ticket another writer
    (a second store on the same file) saves a status event before the reader can save; saves are counted."""

    def __init__(self, path: Path, rival: Store, races: int) -> None:
        super().__init__(path, PHONE_KEY)
        self.rival = rival
        self.races = races
        self.saves = 0

    async def get_ticket(self, ticket_id: str) -> Ticket | None:
        ticket = await super().get_ticket(ticket_id)
        if ticket is not None and self.races > 0:
            self.races -= 1
            await self.rival.save_ticket(self._next_event(ticket), [],
                                         expected_revision=ticket.lifecycle.revision)
        return ticket

    async def save_ticket(self, ticket: Ticket, outbox: list[OutboxEntry], *,
                          expected_revision: int | None = None) -> tuple[str, ...]:
        self.saves += 1
        return await super().save_ticket(ticket, outbox, expected_revision=expected_revision)

    @staticmethod
    def _next_event(ticket: Ticket) -> Ticket:
        # The platform moves the ticket on: 受理 first, then the same status again under the next sequence
        # is not a transition, so later races only advance the sequence, as a status event would.
        sequence = ticket.lifecycle.last_sequence + 1
        if ticket.lifecycle.status is Status.RECEIVED:
            event = StatusEvent(event_id=f"evt-{sequence}", ticket_id=ticket.ticket_id, sequence=sequence,
                                at="2024-06-12T10:00:00+08:00", status=Status.ACCEPTED, org="凯里市市场监督管理局")
            decision = apply_status_event(ticket, event)
            assert decision.outcome is EventOutcome.APPLIED, decision.reason
            return decision.ticket
        lifecycle = ticket.lifecycle.model_copy(update={"last_sequence": sequence})
        return ticket.model_copy(update={"lifecycle": lifecycle})


@pytest.fixture
async def stored(tmp_path: Path) -> AsyncIterator[tuple[Path, SqliteStore, Ticket]]:
    """A complaint stored in a temporary SQLite file, and a second store (the rival writer) open on it."""
    rival = SqliteStore(tmp_path / "gateway.db", PHONE_KEY)
    await rival.open()
    ticket = make_ticket()
    await rival.intake(ticket, RAW, "application/json", [])
    yield tmp_path / "gateway.db", rival, ticket
    await rival.close()


async def raced(path: Path, rival: Store, races: int) -> RacedStore:
    store = RacedStore(path, rival, races)
    await store.open()
    return store


def keeps_number(seen: list[Status]) -> Callable[[Ticket], tuple[str, TicketChange | None]]:
    """A change that keeps the national registration number, noting the status it saw each time it ran."""

    def change(ticket: Ticket) -> tuple[str, TicketChange | None]:
        seen.append(ticket.lifecycle.status)
        return "kept", TicketChange(ticket.model_copy(update={"national_registration_no": "12315-2024-000123"}))

    return change


async def test_a_writer_that_saves_between_read_and_save_makes_the_update_read_again_and_reapply(
        stored: tuple[Path, SqliteStore, Ticket]) -> None:
    path, rival, ticket = stored
    store = await raced(path, rival, races=1)
    seen: list[Status] = []
    try:
        update = await update_ticket(store, ticket.ticket_id, keeps_number(seen))
        saved = await store.get_ticket(ticket.ticket_id)
    finally:
        await store.close()

    assert update is not None and update.saved and update.verdict == "kept"
    assert seen == [Status.RECEIVED, Status.ACCEPTED]  # applied again to what the rival wrote
    assert store.saves == 2
    assert saved is not None
    assert saved.lifecycle.status is Status.ACCEPTED  # the rival's status event is not overwritten
    assert saved.national_registration_no == "12315-2024-000123"


async def test_an_update_that_loses_every_race_raises_concurrent_update_after_five_attempts(
        stored: tuple[Path, SqliteStore, Ticket]) -> None:
    path, rival, ticket = stored
    store = await raced(path, rival, races=100)
    seen: list[Status] = []
    try:
        with pytest.raises(ConcurrentUpdate):
            await update_ticket(store, ticket.ticket_id, keeps_number(seen))
        saved = await store.get_ticket(ticket.ticket_id)
    finally:
        await store.close()

    assert store.saves == 5
    assert len(seen) == 5
    assert saved is not None and saved.national_registration_no is None


async def test_a_change_that_changes_nothing_writes_nothing(stored: tuple[Path, SqliteStore, Ticket]) -> None:
    path, rival, ticket = stored
    store = await raced(path, rival, races=0)
    try:
        update = await update_ticket(store, ticket.ticket_id, lambda read: ("nothing to do", None))
    finally:
        await store.close()

    assert update is not None and not update.saved and update.verdict == "nothing to do"
    assert store.saves == 0


async def test_an_update_of_a_ticket_never_stored_is_none(stored: tuple[Path, SqliteStore, Ticket]) -> None:
    path, rival, _ = stored
    store = await raced(path, rival, races=0)
    try:
        update = await update_ticket(store, "no-such-ticket", lambda read: ("unreachable", None))
    finally:
        await store.close()

    assert update is None
    assert store.saves == 0
