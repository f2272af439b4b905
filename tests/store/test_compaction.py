"""Compaction of old delivered deliveries, by the gateway's hourly task and by `python main.py deliveries compact`."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from contracts.delivery import AttemptOutcome
from gateway.compaction import Compactor
from gateway.store.base import DeliveryFilter, Store
from tests.store.store_support import attempt, national


async def _delivered(store: Store, count: int) -> list[str]:
    for n in range(count):
        await store.enqueue(f"t{n}", f"k{n}", [national()])
    claims = await store.claim("national", "w", 30, limit=count)
    for c in claims:
        await store.settle_delivered(c, attempt(c))
    return [c.delivery_id for c in claims]


async def _response_bodies(store: Store) -> list[str | None]:
    return [a.response_body for d in await store.list_deliveries(DeliveryFilter())
            for a in await store.list_attempts(d.delivery_id)]


async def test_the_compactor_compacts_what_is_older_than_its_days_one_process_at_a_time(store: Store) -> None:
    ids = await _delivered(store, 3)
    assert await Compactor(store, days=1).once() == 0  # none is a day old
    in_two_days = datetime.now(UTC) + timedelta(days=2)
    assert await store.try_lock("compaction", "another-process", 60)
    assert await Compactor(store, days=1, now=lambda: in_two_days).once() == 0  # another process is at it
    await store.release_lock("compaction", "another-process")
    assert await Compactor(store, days=1, now=lambda: in_two_days).once() == 3
    for delivery_id in ids:
        [kept] = await store.list_attempts(delivery_id)
        assert (kept.number, kept.status_code, kept.outcome, kept.response_body) == (
            1, 200, AttemptOutcome.SUCCESS, None)


async def test_the_compactor_runs_in_the_background_until_stopped(store: Store) -> None:
    await _delivered(store, 2)
    in_two_days = datetime.now(UTC) + timedelta(days=2)
    compactor = Compactor(store, days=1, interval=0.05, now=lambda: in_two_days)
    compactor.start()
    try:
        for _ in range(200):
            if await _response_bodies(store) == [None, None]:
                break
            await asyncio.sleep(0.02)
        assert await _response_bodies(store) == [None, None]
    finally:
        await compactor.stop()
    assert compactor._task is None
