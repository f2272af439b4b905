"""Helpers shared by the conformance specifications of every store role."""

from __future__ import annotations

from gateway.store import Store
from tests.store.store_support import attempt

RAW = '{"hotlineNo":"GZ-12345-20240611-0001","appealContent":"预包装食品无生产日期"}'.encode()


async def deliver_all(store: Store, lane: str = "national") -> int:
    n = 0
    while claimed := await store.claim(lane, "cleaner", 30, limit=50):
        for c in claimed:
            await store.settle_delivered(c, attempt(c))
            n += 1
    return n
