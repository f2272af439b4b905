"""Fixtures for the delivery specifications: a real receiver on loopback and real stores (SQLite, Redis, PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.store.base import Store
from simulators.receiver import Receiver, ReceiverThread
from tests.delivery.delivery_support import (
    drop_redis_namespace,
    make_postgres_store,
    make_redis_store,
    make_sqlite_store,
)
from tests.store.postgres_schemas import give_back_schema, take_schema


@pytest.fixture(params=["sqlite", "redis", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Each engine specification runs on every store."""
    namespace = f"test-delivery-{uuid.uuid4().hex[:10]}"
    schema = take_schema("test_delivery")
    s = {"sqlite": lambda: make_sqlite_store(tmp_path / "gateway.db"), "redis": lambda: make_redis_store(namespace),
         "postgres": lambda: make_postgres_store(schema)}[request.param]()
    await s.open()
    try:
        yield s
    finally:
        await s.close()
        if request.param == "redis":
            await drop_redis_namespace(namespace)
        if request.param == "postgres":
            await give_back_schema(schema)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with ReceiverThread() as rx:
        yield rx


