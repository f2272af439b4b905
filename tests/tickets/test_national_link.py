"""The national link's follow-ups against the real national simulator: an answer is kept on the ticket only when its
signature verifies with the platform's key."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from adapters.destination import DestinationConfig
from adapters.wire.senders import HttpSender
from adapters.wire.webhooks import WebhookVerifier
from contracts.base import CHINA_STANDARD_TIME
from contracts.followups import FollowUpNotice
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


async def urge_sent_with(store: SqliteStore, national: str, secret: str) -> datetime | None:
    """Register a complaint, urge it, send the urge through the national link verifying with `secret`; when the
    ticket says the platform answered (None: the answer was not kept)."""
    ticket = make_ticket()
    await store.intake(ticket, b"{}", "application/json", [])
    async with httpx.AsyncClient() as client:
        registered = await client.post(f"{national}/api/v1/tickets", content=ticket.model_dump_json(), headers=AUTH)
    registered.raise_for_status()
    notice = FollowUpNotice(kind="urge", source_system=ticket.source.source_system,
                            adapter_id=ticket.source.adapter_id, source_ticket_no=ticket.source.source_ticket_no,
                            at=datetime(2024, 6, 13, 9, 0, tzinfo=CHINA_STANDARD_TIME), text="请尽快处理")
    await FollowUps(store, "national").notice(ticket, notice, raw_body=b"{}", content_type="application/json")
    (claim,) = await store.claim("national", "test", 60)
    destination = DestinationConfig(name="national", url=f"{national}/api/v1/tickets", headers=AUTH)
    follow_ups = DestinationConfig(name="national", url=follow_ups_url(f"{national}/api/v1/tickets"), headers=AUTH)
    sender = NationalForwardSender(HttpSender(destination), store, follow_ups=HttpSender(follow_ups),
                                   verifier=WebhookVerifier([secret]))
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
