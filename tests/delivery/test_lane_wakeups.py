"""An idle lane on PostgreSQL is woken by LISTEN/NOTIFY: work another process enqueues goes out without waiting for
the lane's next poll (here a poll the test never lets come)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from gateway.delivery.config import EngineSettings
from gateway.delivery.engine import DeliveryEngine
from gateway.store.base import Store
from simulators.receiver import Receiver
from tests.delivery.delivery_support import destination, enqueue, make_postgres_store
from tests.store.postgres_schemas import drop_schema, new_schema

# An idle lane looks again only after ten minutes: within this test, only a wake-up can make it claim.
SLEEPY_ENGINE = EngineSettings(reaper_interval=600, idle_poll_min=600, idle_poll_max=600, stop_grace=5,
                               store_retry_delay=0.2)


@pytest.fixture
async def two_processes() -> AsyncIterator[tuple[Store, Store]]:
    """Two stores on one schema, as the worker process and the API process each open theirs."""
    schema = new_schema("test_wakeups")
    worker_side, api_side = make_postgres_store(schema), make_postgres_store(schema)
    await worker_side.open()
    await api_side.open()
    try:
        yield worker_side, api_side
    finally:
        await worker_side.close()
        await api_side.close()
        await drop_schema(schema)


async def test_work_enqueued_elsewhere_wakes_an_idle_lane_on_postgres(
        two_processes: tuple[Store, Store], receiver: Receiver) -> None:
    worker_side, api_side = two_processes
    dest = destination(receiver)
    engine = DeliveryEngine(worker_side, [dest], settings=SLEEPY_ENGINE)
    async with engine.run_in_app():
        await asyncio.sleep(0.5)  # the lane has found nothing and sleeps for its ten minutes
        assert receiver.stats().total == 0
        made = await enqueue(api_side, dest.name, 3)
        got_all = await asyncio.to_thread(receiver.wait_until, lambda rx: rx.stats().distinct_keys == 3, 60)
    assert got_all, f"the receiver saw {receiver.stats().distinct_keys} of 3 deliveries"
    assert set(receiver.counts()) == {key for _, key in made}
