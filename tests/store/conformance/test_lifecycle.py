"""The life-cycle role (StoreLifecycle) on every backend: health, and data that outlives a close."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from gateway.store import Store
from tests.store.conformance.conformance_support import RAW
from tests.store.store_support import make_ticket, national


async def test_health_reports_reachable_and_whether_data_persists(store: Store) -> None:
    health = await store.health()
    assert health["reachable"] is True
    assert isinstance(health["persistent"], bool)
    assert isinstance(health["warnings"], list)


async def test_data_survives_closing_and_reopening(open_store: Callable[[], Awaitable[Store]]) -> None:
    first = await open_store()
    ticket = make_ticket()
    result = await first.intake(ticket, RAW, "application/json", [national()])
    await first.close()
    second = await open_store()
    assert await second.get_ticket(ticket.ticket_id) == ticket
    [c] = await second.claim("national", "w", 30)
    assert c.delivery_id == result.delivery_ids[0]
