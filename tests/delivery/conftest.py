"""Fixtures for the delivery specifications: a real receiver on loopback and real stores (SQLite, Redis)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from delivery_support import make_redis_store, make_sqlite_store, redis_available

from gateway.store.base import Store
from simulators.receiver import Receiver, ReceiverThread


@pytest.fixture(params=["sqlite", "redis"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """Each engine specification runs on both stores."""
    if request.param == "sqlite":
        s = make_sqlite_store(tmp_path / "gateway.db")
    else:
        if not redis_available():
            pytest.skip("gateway.store.redis is not there yet")
        s = make_redis_store(f"test-delivery-{uuid.uuid4().hex[:10]}")
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with ReceiverThread() as rx:
        yield rx


