"""Helpers of the delivery specifications: stores, destinations at the receiver, enqueueing, waiting."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from adapters.destination import DestinationConfig
from contracts.delivery import DeliveryKind, DeliveryReceipt, DeliveryState, OutboxEntry
from gateway.delivery.config import EngineSettings
from gateway.store.base import Store
from simulators.receiver import Receiver

REDIS_URL = "redis://127.0.0.1:6379/0"
FAST_ENGINE = EngineSettings(reaper_interval=0.2, idle_poll_min=0.01, idle_poll_max=0.05, stop_grace=5,
                             store_retry_delay=0.2)
TICKET_BODY = ('{"ticket_id": "01J0TESTTICKET", "business_type": "02", "title": "预付卡商家跑路",'
               ' "region": "522601"}').encode()


def make_sqlite_store(path: Path) -> Store:
    from gateway.store.sqlite import SqliteStore

    return SqliteStore(path, phone_hash_key=b"delivery-tests-phone-key-32bytes")


def make_postgres_store(schema: str) -> Store:
    from gateway.store.postgres import PostgresStore
    from tests.store.postgres_schemas import pool_settings

    return PostgresStore(pool_settings(schema), phone_hash_key=b"delivery-tests-phone-key-32bytes")


def make_redis_store(namespace: str) -> Store:
    from gateway.store.redis import RedisStore

    return RedisStore(REDIS_URL, phone_hash_key=b"delivery-tests-phone-key-32bytes", namespace=namespace)


async def drop_redis_namespace(namespace: str) -> None:
    """Delete every key a test wrote under its own namespace."""
    import redis.asyncio

    client = redis.asyncio.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{namespace}*", count=1000)]
        for start in range(0, len(keys), 500):
            await client.delete(*keys[start:start + 500])
    finally:
        await client.aclose()


def lane_name() -> str:
    return f"national-{uuid.uuid4().hex[:8]}"


def destination(receiver: Receiver, name: str | None = None, **overrides: Any) -> DestinationConfig:
    """A destination at the receiver with short, test-sized timings; overrides merge into each section."""
    data: dict[str, Any] = {
        "name": name or lane_name(),
        "url": receiver.url + "api/v1/tickets",
        "timeout": {"connect": 1, "total": 2},
        "retry": {"initial_delay": 0.05, "max_delay": 0.2, "jitter": "none", "max_attempts": 5},
        "breaker": {"enabled": False},
        "concurrency": 4,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return DestinationConfig.model_validate(data)


async def enqueue(store: Store, lane: str, count: int, *, prefix: str = "key") -> list[tuple[str, str]]:
    """`count` deliveries on `lane`, one ticket each; (delivery_id, idempotency_key) in order."""
    made: list[tuple[str, str]] = []
    for i in range(count):
        key = f"{prefix}-{uuid.uuid4().hex[:12]}-{i}"
        ids = await store.enqueue(f"ticket-{key}", key,
                                  [OutboxEntry(destination=lane, kind=DeliveryKind.FORWARD, body=TICKET_BODY)])
        made.append((ids[0], key))
    return made


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 10.0, poll: float = 0.02) -> None:
    deadline = asyncio.get_running_loop().time() + within
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not within {within} s: {getattr(check, '__name__', check)}")
        await asyncio.sleep(poll)


async def settled(store: Store, delivery_id: str, within: float = 10.0) -> DeliveryReceipt:
    """Wait until a delivery is delivered or dead; its receipt."""
    final = (DeliveryState.DELIVERED, DeliveryState.DEAD)

    async def done() -> bool:
        receipt = await store.get_delivery(delivery_id)
        return receipt is not None and receipt.state in final

    await eventually(done, within)
    receipt = await store.get_delivery(delivery_id)
    assert receipt is not None
    return receipt
