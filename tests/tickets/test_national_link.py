"""The national link against the real national simulator: an answer to a follow-up is kept on the ticket only when
its signature verifies with the platform's key; a registration is done only once its number is kept."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from adapters.destination import DestinationConfig
from adapters.wire.senders import HttpSender
from adapters.wire.webhooks import WebhookVerifier
from contracts.base import CHINA_STANDARD_TIME
from contracts.delivery import DeliveryKind, OutboxEntry
from contracts.followups import FollowUpNotice
from contracts.ticket import JurisdictionDecision, Ticket
from gateway.store import ConcurrentUpdate
from gateway.store.sqlite import SqliteStore
from gateway.tickets.followups import FollowUps
from gateway.tickets.national_link import NationalForwardSender, follow_ups_url
from simulators.national import DEV_TOKEN, run_national_simulator
from tests.sample_tickets import make_ticket

PLATFORM_SECRET = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
OTHER_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
AUTH = {"Authorization": f"Bearer {DEV_TOKEN}"}


@pytest.fixture(scope="module")
def national() -> Iterator[str]:
    with run_national_simulator(secrets=[PLATFORM_SECRET]) as url:
        yield url


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "gateway.db", b"national-link-test-key")
    await store.open()
    yield store
    await store.close()


class Undecided:
    """No screen, no handler or deadline rules: an urge needs none of the decisions a new version is put through."""

    def screen(self, ticket: Ticket) -> JurisdictionDecision | None:
        return None

    def reassign(self, ticket: Ticket) -> Ticket:
        return ticket


def national_link(store: SqliteStore, national: str, secret: str) -> NationalForwardSender:
    destination = DestinationConfig(name="national", url=f"{national}/api/v1/tickets", headers=AUTH)
    follow_ups = DestinationConfig(name="national", url=follow_ups_url(f"{national}/api/v1/tickets"), headers=AUTH)
    return NationalForwardSender(HttpSender(destination), store, follow_ups=HttpSender(follow_ups),
                                 verifier=WebhookVerifier([secret]))


async def urged(store: SqliteStore, national: str) -> Ticket:
    """A complaint registered at the platform and urged by its partner: the urge waits on the national lane."""
    ticket = make_ticket()
    await store.intake(ticket, b"{}", "application/json", [])
    async with httpx.AsyncClient() as client:
        registered = await client.post(f"{national}/api/v1/tickets", content=ticket.model_dump_json(), headers=AUTH)
    registered.raise_for_status()
    notice = FollowUpNotice(kind="urge", source_system=ticket.source.source_system,
                            adapter_id=ticket.source.adapter_id, source_ticket_no=ticket.source.source_ticket_no,
                            at=datetime(2024, 6, 13, 9, 0, tzinfo=CHINA_STANDARD_TIME), text="请尽快处理")
    await FollowUps(store, "national", Undecided()).notice(ticket, notice, raw_body=b"{}",
                                                           content_type="application/json")
    return ticket


async def urge_sent_with(store: SqliteStore, national: str, secret: str) -> datetime | None:
    """Register a complaint, urge it, send the urge through the national link verifying with `secret`; when the
    ticket says the platform answered (None: the answer was not kept)."""
    ticket = await urged(store, national)
    (claim,) = await store.claim("national", "test", 60)
    sender = national_link(store, national, secret)
    try:
        result = await sender.send(claim)
    finally:
        await sender.aclose()
    assert result.status_code == 200, result.body
    stored = await store.get_ticket(ticket.ticket_id)
    assert stored is not None and stored.sender_updates.urge_count == 1
    return stored.sender_updates.urges[0].national_answered_at


async def reset(national: str) -> None:
    async with httpx.AsyncClient() as client:
        (await client.post(f"{national}/sim/reset")).raise_for_status()


async def test_a_signed_answer_to_an_urge_is_kept_on_the_ticket(store: SqliteStore, national: str) -> None:
    await reset(national)
    assert await urge_sent_with(store, national, PLATFORM_SECRET) is not None


async def test_an_answer_signed_with_another_key_is_not_kept(store: SqliteStore, national: str) -> None:
    await reset(national)
    assert await urge_sent_with(store, national, OTHER_SECRET) is None


class BusyTicketStore(SqliteStore):
    """A store where, for a while, another writer of the ticket (a link back, a status event) always saves first."""

    busy = True

    async def save_ticket(self, ticket: Ticket, outbox: list[OutboxEntry], *,
                          expected_revision: int | None = None) -> tuple[str, ...]:
        if self.busy:
            raise ConcurrentUpdate(f"ticket {ticket.ticket_id} was saved by another writer first")
        return await super().save_ticket(ticket, outbox, expected_revision=expected_revision)


async def test_a_registration_whose_number_cannot_be_kept_is_sent_again(tmp_path: Path, national: str) -> None:
    """The platform registered the ticket, but every try to keep its number lost to another writer: the delivery
    must not count as done (its number would be lost for good); sent again, the same key gets the same number."""
    await reset(national)
    store = BusyTicketStore(tmp_path / "gateway.db", b"national-link-test-key")
    await store.open()
    ticket = make_ticket()
    body = ticket.model_dump_json().encode()
    await store.intake(ticket, b"{}", "application/json",
                       [OutboxEntry(destination="national", kind=DeliveryKind.FORWARD, body=body)])
    sender = NationalForwardSender(HttpSender(DestinationConfig(name="national", url=f"{national}/api/v1/tickets",
                                                                headers=AUTH)), store)
    try:
        (claim,) = await store.claim("national", "test", 60)
        first = await sender.send(claim)
        assert (first.status_code, first.error_class) == (None, "answer_not_kept")
        stored = await store.get_ticket(ticket.ticket_id)
        assert stored is not None and stored.national_registration_no is None
        store.busy = False
        again = await sender.send(claim)
        assert again.status_code == 200, again.body  # the platform's answer to a key it knows
        async with httpx.AsyncClient() as client:
            registered = (await client.get(f"{national}/sim/stats")).json()
        assert (registered["accepted"], registered["duplicates"]) == (1, 1)
        stored = await store.get_ticket(ticket.ticket_id)
        assert stored is not None and stored.national_registration_no == json.loads(again.body or "")[
            "national_registration_no"]
    finally:
        await sender.aclose()
        await store.close()


async def test_an_answer_to_a_follow_up_that_cannot_be_kept_is_asked_for_again(tmp_path: Path, national: str) -> None:
    """The platform took the urge, but every try to keep its answer on the ticket lost to another writer: the
    delivery must not count as done (the ticket would never show the answer); sent again, the platform answers the
    same key the same way and counts the urge once."""
    await reset(national)
    store = BusyTicketStore(tmp_path / "gateway.db", b"national-link-test-key")
    store.busy = False
    await store.open()
    ticket = await urged(store, national)
    (claim,) = await store.claim("national", "test", 60)
    sender = national_link(store, national, PLATFORM_SECRET)
    try:
        store.busy = True
        first = await sender.send(claim)
        assert (first.status_code, first.error_class) == (None, "answer_not_kept")
        stored = await store.get_ticket(ticket.ticket_id)
        assert stored is not None and stored.sender_updates.urges[0].national_answered_at is None
        store.busy = False
        again = await sender.send(claim)
        assert again.status_code == 200, again.body
        stored = await store.get_ticket(ticket.ticket_id)
        assert stored is not None and stored.sender_updates.urges[0].national_answered_at is not None
        async with httpx.AsyncClient() as client:
            stats = (await client.get(f"{national}/sim/stats")).json()
        assert (stats["urges"], stats["follow_up_repeats"]) == (1, 1)
    finally:
        await sender.aclose()
        await store.close()
