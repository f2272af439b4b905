"""Fixtures for the store specifications: every store (a temp SQLite file, a namespaced real Redis, a schema of its
own on the real PostgreSQL) and tickets.

`store` and `open_store` run each test once per backend (tests/store/conformance/ holds the specification by
role); another backend joins by adding its kind to `store_kind` and opening it in `open_store`."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from redis.asyncio import Redis

from gateway.store.base import Store
from gateway.store.postgres import PostgresStore
from gateway.store.redis import RedisStore
from gateway.store.sqlite import SqliteStore
from tests.store.postgres_schemas import give_back_schema, pool_settings, take_schema

REDIS_URL = "redis://127.0.0.1:6379/0"
PHONE_KEY = b"test-phone-hash-key"

StoreFactory = Callable[[], Awaitable[Store]]


@pytest.fixture(params=["sqlite", "redis", "postgres"])
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def redis_namespace() -> str:
    return f"test-store-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def redis_client(redis_namespace: str) -> AsyncIterator[Redis]:
    """A raw client; every key of the test's namespace is deleted afterwards (never FLUSHALL)."""
    client = Redis.from_url(REDIS_URL)
    await client.ping()  # the suite runs against the real Redis on loopback; no Redis is a failure
    yield client
    await client.aclose()
    await drop_namespace(redis_namespace)


@pytest.fixture
def postgres_schema() -> str:
    return take_schema()


@pytest.fixture
async def open_store(store_kind: str, tmp_path: Path, redis_namespace: str,
                     postgres_schema: str) -> AsyncIterator[StoreFactory]:
    """Opens another store on the same data (same SQLite file, Redis namespace, PostgreSQL schema); closes them all."""
    opened: list[Store] = []

    async def make() -> Store:
        store: Store
        if store_kind == "sqlite":
            store = SqliteStore(tmp_path / "gateway.db", PHONE_KEY)
        elif store_kind == "postgres":
            store = PostgresStore(pool_settings(postgres_schema), PHONE_KEY)
        else:
            store = RedisStore(REDIS_URL, PHONE_KEY, namespace=redis_namespace)
        await store.open()
        opened.append(store)
        return store

    yield make
    for store in opened:
        await store.close()
    if store_kind == "redis":
        await drop_namespace(redis_namespace)
    if store_kind == "postgres":
        await give_back_schema(postgres_schema)


async def drop_namespace(namespace: str) -> None:
    """Delete every key of one test namespace (never FLUSHALL: others share this Redis)."""
    client = Redis.from_url(REDIS_URL)
    keys = [key async for key in client.scan_iter(match=f"{namespace}:*", count=1000)]
    if keys:
        await client.delete(*keys)
    await client.aclose()


@pytest.fixture
async def store(open_store: StoreFactory) -> Store:
    return await open_store()
