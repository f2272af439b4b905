"""Polling partners: one poller per adapter and cluster (a store lock), cursor in the store, ack only after storing."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from adapters.base import Adapter, PulledTicket
from gateway.delivery.engine import default_worker_id, worker_is_gone
from gateway.errors import GatewayError
from gateway.http.inbound import TicketIntake
from gateway.store import Coordination

log = logging.getLogger(__name__)


class LockLost(GatewayError, RuntimeError):
    """Another gateway process took this adapter's poll lock; this process stops before telling the partner."""


@dataclass(frozen=True)
class PollReport:
    """One poll: whether it ran (False: another process holds the lock), what came, where the cursor went."""

    adapter_id: str
    ran: bool
    pulled: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)  # by intake outcome kind
    acknowledged: int = 0
    cursor_before: str | None = None
    cursor_after: str | None = None
    has_more: bool = False


@dataclass
class PollerStatus:
    """A poller as ops see it."""

    adapter_id: str
    polls: int = 0
    skipped: int = 0  # another process held the lock
    tickets: int = 0
    consecutive_failures: int = 0
    last_success_at: datetime | None = None
    last_error: str | None = None
    last_error_at: datetime | None = None
    next_poll_in: float = 0.0


# Beyond the configured total timeout, an adapter's call gets this long before the poller gives up on it.
_CALL_GRACE = 1.0


def poll_lock_name(adapter_id: str) -> str:
    return f"poll:{adapter_id}"


class Poller:
    """Pulls one adapter's partner: every pulled item goes through intake, then the partner is acknowledged,
    then the cursor moves. A failure on the way leaves the cursor where it was, so the next poll brings the
    unstored items again (and the stored ones as repeats, which intake recognises)."""

    def __init__(self, adapter: Adapter, store: Coordination, intake: TicketIntake, *, owner: str | None = None,
                 rng: random.Random | None = None) -> None:
        poll = adapter.config.poll
        if poll is None:
            raise ValueError(f"adapter {adapter.id} has no poll configuration")
        self.adapter = adapter
        self.poll = poll
        self.store = store
        self.intake = intake
        self.owner = owner or default_worker_id()
        self.status = PollerStatus(adapter_id=adapter.id)
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not security
        self._wake = asyncio.Event()
        self._stopping = False

    @property
    def lock_name(self) -> str:
        return poll_lock_name(self.adapter.id)

    async def _hold_lock(self, ttl: float) -> bool:
        return await self.store.try_lock(self.lock_name, self.owner, ttl)

    @property
    def call_timeout(self) -> float:
        """How long one pull or acknowledgement may take, whatever the adapter's own timeouts do."""
        return self.poll.timeout.total + _CALL_GRACE

    async def _take_over_stale_lock(self) -> bool:
        """Take the lock from a process of this host that is gone (killed: it never released it), instead of
        waiting out its ttl; a lock of a live process or of another host is left alone."""
        holder = await self.store.lock_holder(self.lock_name)
        if holder is None or holder == self.owner or not worker_is_gone(holder):
            return False
        taken = await self.store.take_over_lock(self.lock_name, holder, self.owner, self.poll.lock_ttl)
        if taken:
            log.warning("took over the poll lock of a process that is gone",
                        extra={"adapter_id": self.adapter.id, "stale_owner": holder})
        return taken

    async def _renew_lock(self, lost: asyncio.Event) -> None:
        # While a poll runs (a slow partner, a long batch through intake) the lock is renewed, so that
        # it never lapses under a live poll and a second process starts the same adapter.
        ttl = self.poll.lock_ttl
        while True:
            await asyncio.sleep(ttl / 3)
            try:
                held = await self._hold_lock(ttl)
            except Exception:  # a store hiccup: try again at the next beat, the lock still has 2/3 of its ttl
                log.warning("poll lock renewal failed", extra={"adapter_id": self.adapter.id}, exc_info=True)
                continue
            if not held:
                lost.set()
                return

    async def poll_once(self) -> PollReport:
        """One pull, store, acknowledge, advance; raises what failed (PartnerUnavailable, TimeoutError, store errors).

        The store lock is held and renewed throughout; pull and acknowledgement each end after `call_timeout`.
        """
        if not await self._hold_lock(self.poll.lock_ttl) and not await self._take_over_stale_lock():
            self.status.skipped += 1
            return PollReport(adapter_id=self.adapter.id, ran=False)
        lost = asyncio.Event()
        renewer = asyncio.create_task(self._renew_lock(lost), name=f"poll-lock:{self.adapter.id}")
        try:
            return await self._poll_locked(lost)
        finally:
            renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewer

    async def _poll_locked(self, lost: asyncio.Event) -> PollReport:
        adapter_id = self.adapter.id
        cursor = await self.store.get_cursor(adapter_id)
        try:
            async with asyncio.timeout(self.call_timeout):
                batch = await self.adapter.pull(cursor)
        except TimeoutError as err:  # asyncio's has no text: say what did not finish, and within what
            raise TimeoutError(f"adapter {adapter_id}: the pull did not finish within {self.call_timeout:g} s "
                               "(poll.timeout.total and a grace)") from err
        stored: list[PulledTicket] = []
        outcomes: Counter[str] = Counter()
        failure: Exception | None = None
        for item in batch.items:
            try:
                outcome = await self.intake.accept(adapter_id, item.payload, raw_body=item.raw_body,
                                                   content_type=item.content_type)
            except Exception as err:  # stop here: what was stored is acknowledged, the cursor stays
                failure = err
                break
            stored.append(item)
            outcomes[outcome.kind] += 1
        # A poll that outlived its lock may have been overtaken: say nothing to the partner then.
        if lost.is_set() or not await self._hold_lock(self.poll.lock_ttl):
            raise LockLost(f"adapter {adapter_id}: the poll lock passed to another process during a poll")
        if stored:
            try:
                async with asyncio.timeout(self.call_timeout):
                    await self.adapter.acknowledge(stored)
            except TimeoutError as err:
                raise TimeoutError(f"adapter {adapter_id}: acknowledging {len(stored)} stored tickets did not "
                                   f"finish within {self.call_timeout:g} s") from err
        if failure is not None:
            raise failure
        if batch.next_cursor is not None and batch.next_cursor != cursor:
            await self.store.set_cursor(adapter_id, batch.next_cursor)
        self.status.polls += 1
        self.status.tickets += len(stored)
        return PollReport(adapter_id=adapter_id, ran=True, pulled=len(batch.items), outcomes=dict(outcomes),
                          acknowledged=len(stored), cursor_before=cursor,
                          cursor_after=batch.next_cursor if batch.next_cursor is not None else cursor,
                          has_more=batch.has_more)

    def backoff_delay(self, failures: int) -> float:
        """Seconds to wait after `failures` consecutive failures (1 = the first)."""
        backoff = self.poll.backoff
        delay: float = min(backoff.initial * backoff.factor ** max(failures - 1, 0), backoff.max)
        spread = delay * backoff.jitter_percent / 100
        return max(0.0, delay + self._rng.uniform(-spread, spread))

    def wake(self) -> None:
        """Poll now instead of at the end of the current wait."""
        self._wake.set()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    async def _wait(self, seconds: float) -> None:
        self.status.next_poll_in = seconds
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=seconds)
        self._wake.clear()

    async def run(self) -> None:
        """Poll until stopped: every interval, at once while the partner has more, backing off on failures."""
        try:
            while not self._stopping:
                try:
                    report = await self.poll_once()
                except asyncio.CancelledError:
                    raise
                except Exception as err:  # the partner or the store failed; try again later, never give up
                    self.status.consecutive_failures += 1
                    self.status.last_error = f"{type(err).__name__}: {err or repr(err)}"
                    self.status.last_error_at = datetime.now(UTC)
                    delay = self.backoff_delay(self.status.consecutive_failures)
                    log.warning("poll failed; backing off", extra={
                        "adapter_id": self.adapter.id, "error": self.status.last_error,
                        "failures": self.status.consecutive_failures, "retry_in_s": round(delay, 2)})
                    await self._wait(delay)
                    continue
                if report.ran:
                    self.status.consecutive_failures = 0
                    self.status.last_success_at = datetime.now(UTC)
                    if report.pulled:
                        log.info("polled", extra={"adapter_id": self.adapter.id, "pulled": report.pulled,
                                                  "outcomes": report.outcomes, "cursor": report.cursor_after})
                    if report.has_more:
                        await asyncio.sleep(0)
                        continue
                    # Keep the lock through the wait, so the other processes do not poll in between.
                    await self._hold_lock(self.poll.interval_seconds + self.poll.lock_ttl)
                await self._wait(self.poll.interval_seconds)
        finally:
            with contextlib.suppress(Exception):
                await self.store.release_lock(self.lock_name, self.owner)


class PollScheduler:
    """Runs a Poller for every adapter that pulls; start it in the gateway's lifespan, stop it on shutdown."""

    def __init__(self, adapters: Iterable[Adapter], store: Coordination, intake: TicketIntake, *,
                 owner: str | None = None) -> None:
        self.owner = owner or default_worker_id()
        self.pollers: dict[str, Poller] = {
            adapter.id: Poller(adapter, store, intake, owner=self.owner) for adapter in adapters if adapter.pulls
        }
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        for adapter_id, poller in self.pollers.items():
            self._tasks.append(asyncio.create_task(poller.run(), name=f"poller:{adapter_id}"))

    async def stop(self, grace: float = 5.0) -> None:
        """Stop polling; a poll in progress gets `grace` seconds to finish before it is cancelled."""
        for poller in self.pollers.values():
            poller.stop()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    def wake(self, adapter_id: str | None = None) -> None:
        for key, poller in self.pollers.items():
            if adapter_id is None or key == adapter_id:
                poller.wake()

    def status(self) -> dict[str, PollerStatus]:
        return {key: poller.status for key, poller in self.pollers.items()}


async def start_pollers(adapters: Iterable[Adapter], store: Coordination, intake: TicketIntake, *,
                        owner: str | None = None) -> PollScheduler:
    """Start a poller for every adapter that pulls (call from the gateway's lifespan); `await scheduler.stop()`
    on shutdown. Processes sharing one store (Redis) poll each adapter from one process at a time."""
    scheduler = PollScheduler(adapters, store, intake, owner=owner)
    await scheduler.start()
    return scheduler
