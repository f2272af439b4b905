"""Compaction of old delivered deliveries: their bodies (copies of what was sent) dropped, their records kept.

A ticket's deliveries carry the body each receiver got, a copy of the ticket at that moment, so without this a
store grows by several kilobytes per delivery for ever. `store.compact_delivered_after_days` turns it on: the
process with delivery workers compacts once an hour, in batches with a pause between them so that intake and
the lanes keep the store; on Redis one process at a time (a store lock). `python main.py deliveries compact`
does the same by hand. The ticket, its raw payload, and every delivery's state, times and attempts stay.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from gateway.store import LaneStore, Store

log = logging.getLogger(__name__)

LOCK = "compaction"
BATCH = 500


async def compact_older_than(store: LaneStore, days: int, *, pause: float = 0.0,
                             now: Callable[[], datetime] = lambda: datetime.now(UTC),
                             progress: Callable[[int], None] | None = None) -> int:
    """Compact every delivered delivery created more than `days` days ago; how many."""
    cutoff = now() - timedelta(days=days)
    total = 0
    while True:
        done = await store.compact_delivered(cutoff, limit=BATCH)
        total += done
        if progress is not None and done:
            progress(done)
        if done == 0:
            return total
        if pause:
            await asyncio.sleep(pause)


class Compactor:
    """Compacts once every `interval` seconds while running (started with the delivery workers)."""

    def __init__(self, store: Store, days: int, *, interval: float = 3600.0, pause: float = 0.05,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self.days = days
        self.interval = interval
        self.pause = pause
        self.now = now
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="compaction")

    async def stop(self) -> None:
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._task, 5.0)
            self._task = None

    async def once(self) -> int:
        # The lock outlives a long run's batches by far; a crashed holder's lock runs out by itself.
        if not await self.store.try_lock(LOCK, self.owner, self.interval):
            return 0
        try:
            count = await compact_older_than(self.store, self.days, pause=self.pause, now=self.now)
        finally:
            await self.store.release_lock(LOCK, self.owner)
        if count:
            log.info("old delivered deliveries compacted", extra={"count": count, "older_than_days": self.days})
        return count

    async def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.once()
            except Exception:  # a store hiccup: try again at the next round
                log.exception("compacting delivered deliveries failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)
