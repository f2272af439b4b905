"""Fixtures for the delivery specifications: a real receiver on loopback and real stores (SQLite, Redis)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from gateway.store.base import Store
from simulators.receiver import Receiver, ReceiverThread
from tests.delivery.delivery_support import drop_redis_namespace, make_redis_store, make_sqlite_store


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Each engine specification runs on both stores."""
    namespace = f"test-delivery-{uuid.uuid4().hex[:10]}"
    s = make_sqlite_store(tmp_path / "gateway.db") if request.param == "sqlite" else make_redis_store(namespace)
    await s.open()
    try:
        yield s
    finally:
        await s.close()
        if request.param == "redis":
            await drop_redis_namespace(namespace)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with ReceiverThread() as rx:
        yield rx


