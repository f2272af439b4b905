"""Per-minute counts of intake, deliveries and failures for the dashboard's chart: buffered here, kept in the store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from gateway.store import OpsLedger

log = logging.getLogger(__name__)

# The series the chart draws; every process adds to the same per-minute counters in the store.
INTAKE = "intake"  # new payloads taken (stored or quarantined); not a repeat of a known ticket
QUARANTINED = "quarantined"
DELIVERED = "delivered"
FAILED = "failed"  # attempts that did not deliver (retried or dead-lettered)
DEAD = "dead"
SERIES = (INTAKE, QUARANTINED, DELIVERED, FAILED, DEAD)


def minute_of(at: datetime) -> datetime:
    return at.astimezone(UTC).replace(second=0, microsecond=0)


class MinuteCounts:
    """Adds in memory (no store write per event) and flushes every few seconds, so several processes add up."""

    def __init__(self, store: OpsLedger, *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.store = store
        self._clock = clock
        self._pending: dict[datetime, Counter[str]] = {}

    def add(self, name: str, n: int = 1) -> None:
        self._pending.setdefault(minute_of(self._clock()), Counter())[name] += n

    async def flush(self) -> None:
        pending, self._pending = self._pending, {}
        if not pending:
            return
        try:
            await self.store.add_counts({minute: dict(counts) for minute, counts in pending.items()})
        except Exception:
            # Kept for the next flush: a chart a few seconds late is better than one with a hole.
            for minute, counts in pending.items():
                self._pending.setdefault(minute, Counter()).update(counts)
            raise

    async def run(self, interval: float = 5.0) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.flush()
            except Exception:
                log.exception("per-minute counts could not be written; kept for the next try")

    async def stop(self, task: asyncio.Task[None]) -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        with contextlib.suppress(Exception):
            await self.flush()

    async def read(self, hours: float) -> dict[datetime, dict[str, int]]:
        """Counts per minute of the last `hours`, this process's unflushed ones included."""
        since = minute_of(self._clock() - timedelta(hours=hours))
        found = await self.store.read_counts(since)
        for minute, counts in self._pending.items():
            if minute >= since:
                merged = found.setdefault(minute, {})
                for name, n in counts.items():
                    merged[name] = merged.get(name, 0) + n
        return found
