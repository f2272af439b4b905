"""The delivery engine: one lane of asyncio workers per destination, a lease reaper, a graceful stop."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from adapters.destination import DestinationConfig
from adapters.wire.results import ErrorClass, SendResult
from adapters.wire.senders import Sender, build_sender, truncate_body
from contracts.delivery import AttemptOutcome, AttemptReceipt, ClaimedDelivery
from gateway.delivery.breaker import BreakerSnapshot, BreakerState, CircuitBreaker, Permit
from gateway.delivery.config import DeliveryConfig, EngineSettings
from gateway.delivery.policy import Decision, DecisionKind, bounded_retry_after, decide
from gateway.delivery.ratelimit import TokenBucket
from gateway.store import LaneStore, LeaseLost

log = logging.getLogger(__name__)

# Called after every settled attempt (metrics, ops): destination, the attempt, what was decided.
AttemptListener = Callable[[str, AttemptReceipt, Decision], None]

# A lane claims ahead of its send workers, so that a worker finishing a send takes the next at once, as a
# client's own loop does (httpcore checks every idle connection of its pool on every request, and
# connections left idle while the next claim came from the store made each send cost more). Ahead means
# about _AHEAD_SECONDS of sends at the lane's rate in the last second, at most _AHEAD_FACTOR × concurrency:
# a slow destination gets no claims ahead, whose leases would run out in the queue.
_AHEAD_SECONDS = 0.1
_AHEAD_FACTOR = 4
# Claimed and not yet settled (queued, being sent, or settling), at most, as a multiple of concurrency.
_UNSETTLED_FACTOR = 8

# A sender gets this much beyond the destination's total timeout before the engine gives up on it;
# the lease outlives the total timeout by more than a second, so the settle still lands in time.
_SENDER_GRACE = 0.5


def _utc_now() -> datetime:
    return datetime.now(UTC)


def default_worker_id() -> str:
    """Unique per process start: host, pid and a random suffix (pids are reused after a restart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def worker_is_gone(worker_id: str) -> bool:
    """Whether a `default_worker_id` names a process of this host that no longer runs: its pid is gone, or it is
    this process's own pid under another start's suffix (a restart in a container, where the pid is 1 again).
    Another host's worker, or an id of another shape, is never judged gone."""
    host, _, rest = worker_id.partition(":")
    pid_text, _, suffix = rest.partition(":")
    if host != socket.gethostname() or not pid_text.isdigit() or not suffix:
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return True  # the caller's own id differs from it (else it would hold the lock): an earlier start
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # a live process of another user
        return False
    return False


@dataclass(frozen=True)
class LaneStatus:
    """One lane as ops and metrics see it."""

    destination: str
    in_flight: int  # sends in flight (at most `concurrency`)
    concurrency: int
    queued: int  # claimed ahead, waiting for a free send worker
    breaker: BreakerSnapshot | None
    tokens: float | None  # rate-limit tokens available now; None when unlimited
    paused_for: float  # seconds left of a pause asked for by a Retry-After
    counters: dict[str, int] = field(default_factory=dict)


class SendRate:
    """Sends finished in the last whole second of the clock (0 once a second went by without any)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._second = 0
        self._this = 0  # sends counted in `_second`
        self._last = 0  # sends counted in the second before it

    def count(self) -> None:
        self._roll()
        self._this += 1

    def per_second(self) -> int:
        self._roll()
        return self._last

    def _roll(self) -> None:
        second = int(self._clock())
        if second != self._second:
            self._last = self._this if second == self._second + 1 else 0
            self._this = 0
            self._second = second


class Lane:
    """Claims, sends and settles the deliveries of one destination, up to `concurrency` at once."""

    def __init__(self, destination: DestinationConfig, sender: Sender, store: LaneStore, worker_id: str,
                 settings: EngineSettings, *, clock: Callable[[], float], wall_clock: Callable[[], datetime],
                 rng: random.Random, listeners: Sequence[AttemptListener]) -> None:
        self.destination = destination
        self.sender = sender
        self.breaker = CircuitBreaker(destination.breaker, clock) if destination.breaker.enabled else None
        self.bucket = TokenBucket.from_config(destination.rate_limit, clock)
        self.counters: Counter[str] = Counter()
        self._store = store
        self._worker_id = worker_id
        self._settings = settings
        self._clock = clock
        self._wall = wall_clock
        self._rng = rng
        self._listeners = listeners  # the engine's own list: a listener added later reaches running lanes
        # `concurrency` long-lived send workers take claimed deliveries from a queue, as a client's own
        # workers would: a fresh task per delivery made each httpx send cost about half as much again. A
        # send's settle runs in a task of its own, so the worker sends the next while the store records the
        # last; _AHEAD_* and _UNSETTLED_FACTOR bound what is claimed.
        self._claimed: asyncio.Queue[tuple[ClaimedDelivery, Permit | None] | None] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._settling: set[asyncio.Task[None]] = set()
        self._sending = 0  # claimed deliveries not yet sent: queued or in a worker's hands
        self._send_rate = SendRate(clock)
        self._wake = asyncio.Event()
        self._stopping = asyncio.Event()  # also ends a held-back claim's wait for a pause: it is given back
        self._paused_until = 0.0

    # -- control ---------------------------------------------------------------------------------
    def wake(self) -> None:
        """Look for work now (new deliveries were enqueued, or a send finished)."""
        self._wake.set()

    def stop_claiming(self) -> None:
        self._stopping.set()
        self._wake.set()

    @property
    def in_flight(self) -> list[asyncio.Task[None]]:
        """The tasks a graceful stop waits for: the send workers (which end once the queue is sent and their
        settles landed) and the settles under way."""
        return [*self._workers, *self._settling]

    def status(self) -> LaneStatus:
        queued = min(self._claimed.qsize(), self._sending)  # the stop's end markers are no claims
        return LaneStatus(
            destination=self.destination.name,
            in_flight=self._sending - queued,
            concurrency=self.destination.concurrency,
            queued=queued,
            breaker=self.breaker.snapshot() if self.breaker else None,
            tokens=self.bucket.tokens if self.bucket else None,
            paused_for=max(self._paused_until - self._clock(), 0.0),
            counters=dict(self.counters),
        )

    # -- the dispatcher --------------------------------------------------------------------------
    async def run(self) -> None:
        """Claim as many deliveries as there are free slots, breaker and rate limit permitting."""
        self._workers = [asyncio.create_task(self._send_worker(), name=f"sender:{self.destination.name}:{i}")
                         for i in range(self.destination.concurrency)]
        try:
            await self._dispatch_until_stopped()
        finally:
            for _ in self._workers:  # after every claim: the workers send what is queued, then end
                self._claimed.put_nowait(None)

    async def _dispatch_until_stopped(self) -> None:
        idle = self._settings.idle_poll_min
        while not self._stopping.is_set():
            try:
                found = await self._dispatch_once()
            except Exception:  # a bug or an unexpected store failure must not end the lane
                log.exception("delivery lane failed; continuing",
                              extra={"destination": self.destination.name})
                self.counters["lane_errors"] += 1
                await self._nap(self._settings.store_retry_delay)
                continue
            if found is False:  # an empty lane is polled less and less often, up to idle_poll_max
                await self._nap(idle)
                idle = min(idle * 2, self._settings.idle_poll_max)
            else:
                idle = self._settings.idle_poll_min

    async def _dispatch_once(self) -> bool | None:
        """One round: True when deliveries were claimed, False when the lane was empty, None when it
        waited for something else (a free slot, the breaker, the rate limit, a Retry-After pause)."""
        # Cleared before the state is read, so a wake-up arriving during this round is not lost.
        self._wake.clear()
        concurrency = self.destination.concurrency
        ahead = min(int(self._send_rate.per_second() * _AHEAD_SECONDS), _AHEAD_FACTOR * concurrency)
        free = min(concurrency + ahead - self._sending,
                   _UNSETTLED_FACTOR * concurrency - self._sending - len(self._settling))
        if free <= 0:
            await self._nap(self._settings.idle_poll_max)  # a finished send wakes it sooner
            return None
        pause = self._paused_until - self._clock()
        if pause > 0:
            await self._nap(pause)
            return None
        wanted = min(free, self.destination.claim_batch)
        probe: Permit | None = None
        if self.breaker is not None:
            state = self.breaker.state
            if state is BreakerState.OPEN:
                # Nothing is claimed while open: the deliveries stay due in the store, no attempt counted.
                await self._nap(self.breaker.reopens_in())
                return None
            if state is BreakerState.HALF_OPEN:
                probe = self.breaker.acquire()
                if probe is None:  # the probe is still out; its end wakes the lane
                    await self._nap(self._settings.idle_poll_max)
                    return None
                wanted = 1
        granted = wanted
        if self.bucket is not None:
            granted = self.bucket.take(wanted)
            if granted == 0:
                self._release(probe)
                await self._nap(self.bucket.wait_time())
                return None
        try:
            claims = await self._store.claim(self.destination.name, self._worker_id,
                                             self.destination.lease_seconds, limit=granted)
        except Exception:
            self._release(probe)
            if self.bucket is not None:
                self.bucket.give_back(granted)
            log.exception("claim failed", extra={"destination": self.destination.name})
            self.counters["store_errors"] += 1
            await self._nap(self._settings.store_retry_delay)
            return None
        if self.bucket is not None:
            self.bucket.give_back(granted - len(claims))
        if not claims:
            self._release(probe)
            return False
        self.counters["claimed"] += len(claims)
        self._sending += len(claims)
        for i, claim in enumerate(claims):
            permit = probe if probe is not None and i == 0 else (
                self.breaker.acquire() if self.breaker is not None else None)
            self._claimed.put_nowait((claim, permit))
        return True

    async def _send_worker(self) -> None:
        """Send claimed deliveries one after another until the dispatcher's end; then wait for the settles."""
        while (item := await self._claimed.get()) is not None:
            claim, permit = item
            try:
                go, permit = await self._clearance(claim, permit)
                if go:
                    await self._attempt(claim, permit)
            except Exception as exc:
                self._attempt_failed(exc)
            finally:  # sent, held back, failed or cancelled: the claim's slot is free
                self._sending -= 1
                self._wake.set()
                # A probe that ended without a verdict (cancelled at stop, or an engine error) must not
                # hold the half-open breaker forever; a recorded permit is a no-op to release.
                self._release(permit)
        await asyncio.gather(*self._settling, return_exceptions=True)  # a cancelled stop cancels them too

    async def _clearance(self, claim: ClaimedDelivery, permit: Permit | None) -> tuple[bool, Permit | None]:
        """Whether to send a claim taken from the queue now, and under which breaker permit.

        A Retry-After pause or a breaker that opened after the claim is waited out while the lease still
        leaves the send and its settle their time. When it no longer does (or the engine is stopping), the
        claim is not sent: it is given back to the lane at once, with no attempt counted."""
        dest = self.destination
        slack = dest.lease_seconds - dest.timeout.total - _SENDER_GRACE  # what the lease leaves beyond a send
        send_by = claim.lease_until.timestamp() - dest.timeout.total - _SENDER_GRACE - slack / 2
        while True:
            wait = max(self._paused_until - self._clock(), 0.0)
            if wait == 0.0 and self.breaker is not None:
                renewed = self.breaker.renew(permit)
                if renewed is None:
                    wait = self.breaker.reopens_in() or self._settings.idle_poll_max
                else:
                    permit = renewed
            if wait == 0.0:
                return True, permit
            room = send_by - self._wall().timestamp()
            if room <= 0 or self._stopping.is_set():  # the worker hands the permit back
                await self._give_back(claim)
                return False, permit
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), min(wait, room))

    async def _give_back(self, claim: ClaimedDelivery) -> None:
        """A claim held back (paused lane, open breaker, stopping) goes back to the lane unsent; should the store
        not take it back, its lease runs out and the reaper returns it."""
        extra = {"destination": self.destination.name, "delivery_id": claim.delivery_id,
                 "lease_until": claim.lease_until.isoformat()}
        try:
            released = await self._store.release(claim)
        except Exception:
            self.counters["left_to_lease"] += 1
            log.exception("a held-back claim could not be given back; it is left to its lease", extra=extra)
            return
        if released:
            self.counters["released"] += 1
            log.info("a claimed delivery was held back (paused lane, open breaker or stopping) and given back "
                     "unsent", extra=extra)
        else:  # its lease had run out meanwhile: the reaper (or another worker) has it already
            self.counters["lease_lost"] += 1
            log.info("a claimed delivery was held back past its lease; nothing to give back", extra=extra)

    def _attempt_failed(self, exc: BaseException) -> None:
        # Not settled: the lease runs out and the delivery is sent again. Say so, never silently.
        self.counters["attempt_errors"] += 1
        log.error("an attempt failed inside the engine; the delivery is retried after its lease",
                  exc_info=exc, extra={"destination": self.destination.name})

    def _settled(self, task: asyncio.Task[None]) -> None:
        self._settling.discard(task)
        self._wake.set()
        error = None if task.cancelled() else task.exception()
        if error is not None:
            self._attempt_failed(error)

    def _release(self, permit: Permit | None) -> None:
        if permit is not None and self.breaker is not None:
            self.breaker.release(permit)

    async def _nap(self, seconds: float) -> None:
        """Sleep up to `seconds`; a finished send, new work or stop wakes it early."""
        if self._stopping.is_set() or seconds <= 0:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    # -- one attempt -----------------------------------------------------------------------------
    async def _attempt(self, claim: ClaimedDelivery, permit: Permit | None) -> None:
        """Send one delivery; its settle goes on in a task of its own while the worker takes the next."""
        settle = await self._send(claim, permit)
        self._send_rate.count()
        task = asyncio.create_task(settle, name=f"settle:{self.destination.name}:{claim.delivery_id}")
        self._settling.add(task)
        task.add_done_callback(self._settled)

    async def _send(self, claim: ClaimedDelivery, permit: Permit | None) -> Coroutine[None, None, None]:
        """Send, decide and tell the breaker; the settle still to run."""
        dest = self.destination
        number = claim.attempts + 1
        started_at = self._wall()
        started = self._clock()
        try:
            async with asyncio.timeout(dest.timeout.total + _SENDER_GRACE):
                result = await self.sender.send(claim)
        except TimeoutError:
            result = SendResult(status_code=None, error_class=ErrorClass.TIMEOUT,
                                body="the sender did not return within the total timeout",
                                duration=self._clock() - started)
        except Exception as exc:  # senders should not raise; a buggy one must not lose the delivery
            result = SendResult(status_code=None, error_class=ErrorClass.SENDER_ERROR,
                                body=truncate_body(f"{type(exc).__name__}: {exc}".encode()),
                                duration=self._clock() - started)
        now = self._wall()
        decision = decide(dest.retry, number - claim.budget_attempts, claim.budget_since or claim.created_at, now,
                          result, self._rng)
        attempt = AttemptReceipt(
            delivery_id=claim.delivery_id, number=number, started_at=started_at,
            duration_ms=round(max(result.duration, 0.0) * 1000, 3), status_code=result.status_code,
            error_class=result.error_class[:100] if result.error_class else None,
            outcome=decision.outcome, response_body=result.body,
        )
        self._observe(result, decision, permit)
        return self._settle(claim, attempt, decision)

    def _observe(self, result: SendResult, decision: Decision, permit: Permit | None) -> None:
        dest = self.destination
        if self.breaker is not None and permit is not None:
            if result.status_code == 429:
                self.breaker.release(permit)  # the receiver is up, only busy: a rate matter, not health
            else:
                self.breaker.record(permit, failed=decision.outcome is AttemptOutcome.RETRY)
        if (dest.pause_on_retry_after and result.retry_after is not None
                and result.status_code in (429, 503)):
            until = self._clock() + bounded_retry_after(dest.retry, result.retry_after)
            self._paused_until = max(self._paused_until, until)

    async def _settle(self, claim: ClaimedDelivery, attempt: AttemptReceipt, decision: Decision) -> None:
        extra = {"destination": claim.destination, "delivery_id": claim.delivery_id,
                 "ticket_id": claim.ticket_id, "attempt": attempt.number,
                 "status_code": attempt.status_code, "error_class": attempt.error_class,
                 "decision": decision.kind.value, "reason": decision.reason}
        self.counters["attempts"] += 1
        try:
            if decision.kind is DecisionKind.DELIVERED:
                await self._store.settle_delivered(claim, attempt)
            elif decision.kind is DecisionKind.RETRY:
                assert decision.retry_at is not None
                await self._store.settle_retry(claim, attempt, decision.retry_at)
            else:
                await self._store.settle_dead(claim, attempt)
        except LeaseLost:
            # Another worker holds it now and will send it again: at-least-once, never lost.
            self.counters["lease_lost"] += 1
            log.warning("lease lost before settling; the delivery will be sent again", extra=extra)
            return
        except Exception:
            # The lease runs out and the reaper returns the delivery: sent again, never lost.
            self.counters["store_errors"] += 1
            log.exception("settling failed; the delivery will be sent again after its lease", extra=extra)
            return
        self.counters[decision.kind.value] += 1
        if decision.kind is DecisionKind.DELIVERED:
            log.debug("delivered", extra=extra)
        elif decision.kind is DecisionKind.RETRY:
            log.info("attempt failed; retry scheduled",
                     extra={**extra, "retry_at": decision.retry_at.isoformat() if decision.retry_at else None})
        else:
            log.warning("delivery dead-lettered", extra=extra)
        for listener in self._listeners:
            try:
                listener(claim.destination, attempt, decision)
            except Exception:
                log.exception("attempt listener failed", extra=extra)


class DeliveryEngine:
    """Runs one lane per destination against a store, plus a reaper of expired leases.

    Several engines (processes) may share one store: the store's leases keep a delivery with one
    worker at a time. Breakers and rate limits are per process.
    """

    def __init__(self, store: LaneStore, destinations: Sequence[DestinationConfig], *,
                 settings: EngineSettings | None = None, senders: Mapping[str, Sender] | None = None,
                 worker_id: str | None = None, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], datetime] = _utc_now, rng: random.Random | None = None,
                 listeners: Sequence[AttemptListener] = ()) -> None:
        self.store = store
        self.settings = settings or EngineSettings()
        self.worker_id = worker_id or default_worker_id()
        self.destinations = {d.name: d for d in destinations}
        if len(self.destinations) != len(destinations):
            raise ValueError("destination names must be unique")
        for dest in destinations:
            if dest.lease_seconds <= dest.timeout.total + _SENDER_GRACE:
                raise ValueError(f"destination {dest.name}: the lease must outlive the request timeout")
        self._given_senders = dict(senders or {})
        unknown = set(self._given_senders) - set(self.destinations)
        if unknown:
            raise ValueError(f"senders given for unknown destinations: {', '.join(sorted(unknown))}")
        self._clock = clock
        self._wall = wall_clock
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._listeners = list(listeners)
        self._built_senders: list[Sender] = []
        self.lanes: dict[str, Lane] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._reaper: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._watching = False
        self.reaped = 0

    @classmethod
    def from_config(cls, store: LaneStore, config: DeliveryConfig, *, senders: Mapping[str, Sender] | None = None,
                    worker_id: str | None = None,
                    listeners: Sequence[AttemptListener] = ()) -> DeliveryEngine:
        """An engine for a loaded delivery configuration (engine timing and destinations)."""
        return cls(store, config.destinations, settings=config.engine, senders=senders, worker_id=worker_id,
                   listeners=listeners)

    def add_listener(self, listener: AttemptListener) -> None:
        self._listeners.append(listener)

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    async def start(self) -> None:
        """Start every lane and the reaper; returns at once."""
        if self._tasks:
            raise RuntimeError("the delivery engine is already running")
        self._stopping.clear()
        for name, dest in self.destinations.items():
            sender = self._given_senders.get(name)
            if sender is None:
                sender = build_sender(dest)
                self._built_senders.append(sender)
            lane = Lane(dest, sender, self.store, self.worker_id, self.settings, clock=self._clock,
                        wall_clock=self._wall, rng=self._rng, listeners=self._listeners)
            self.lanes[name] = lane
            self._tasks.append(asyncio.create_task(lane.run(), name=f"lane:{name}"))
        self._reaper = asyncio.create_task(self._reap_forever(), name="lease-reaper")
        if not self._watching:  # once per engine: the store wakes lanes until it closes
            self._watching = True
            await self.store.watch_lanes(self.wake)
        log.info("delivery engine started",
                 extra={"worker_id": self.worker_id, "destinations": sorted(self.destinations)})

    async def stop(self, grace: float | None = None) -> None:
        """Stop claiming; the send workers send what is queued, except claims held back by a pause, which are
        given back unsent at once; give sends in flight `grace` seconds to finish and settle, then cancel the
        rest (their leases run out and another worker, or the next start, sends them again). Always returns:
        nothing here waits without a bound on a task that may ignore its cancellation."""
        grace = self.settings.stop_grace if grace is None else grace
        deadline = asyncio.get_running_loop().time() + grace
        self._stopping.set()
        for lane in self.lanes.values():
            lane.stop_claiming()
        # Dispatchers end at their next step; one may be inside a claim, which may lease deliveries.
        await _finish_or_cancel(self._tasks, max(deadline - asyncio.get_running_loop().time(), 0.5))
        in_flight = [t for lane in self.lanes.values() for t in lane.in_flight]
        cancelled = await _finish_or_cancel(in_flight, deadline - asyncio.get_running_loop().time())
        if self._reaper is not None:
            await _finish_or_cancel([self._reaper], 1.0)
            self._reaper = None
        for sender in self._built_senders:
            with contextlib.suppress(Exception):
                await sender.aclose()
        self._built_senders.clear()
        self._tasks.clear()
        log.info("delivery engine stopped", extra={
            "worker_id": self.worker_id, "cancelled_sends": cancelled, "reaped": self.reaped,
            "lanes": {name: dict(lane.counters) for name, lane in self.lanes.items()}})

    @contextlib.asynccontextmanager
    async def run_in_app(self) -> AsyncIterator[DeliveryEngine]:
        """`async with engine.run_in_app():` — start on enter, graceful stop on exit (a FastAPI lifespan)."""
        await self.start()
        try:
            yield self
        finally:
            await self.stop()

    def wake(self, destination: str | None = None) -> None:
        """Tell a lane (or every lane) that work was enqueued, so it claims now rather than at its next poll."""
        for name, lane in self.lanes.items():
            if destination is None or name == destination:
                lane.wake()

    def status(self) -> dict[str, LaneStatus]:
        return {name: lane.status() for name, lane in self.lanes.items()}

    async def reap_once(self) -> int:
        count = await self.store.reap_expired_leases(self._wall())
        self.reaped += count
        if count:
            log.info("expired leases returned to their lanes", extra={"count": count})
            self.wake()
        return count

    async def _reap_forever(self) -> None:
        # Ends on the stop event rather than on cancellation, which a store call may swallow.
        while not self._stopping.is_set():
            try:
                await self.reap_once()
            except Exception:
                log.exception("reaping expired leases failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.settings.reaper_interval)


async def _finish_or_cancel(tasks: Sequence[asyncio.Task[None]], within: float) -> int:
    """Wait up to `within` seconds for tasks to end, then cancel the rest and wait a moment more; how many were
    cancelled. Never waits unbounded: redis-py can turn a cancellation into a retried ConnectionError
    (redis/redis-py#2028, #2551), so a cancelled task may run on until its own work is done."""
    if not tasks:
        return 0
    _, pending = await asyncio.wait(tasks, timeout=max(within, 0.0))
    for task in pending:
        task.cancel()
    if pending:
        _, stubborn = await asyncio.wait(pending, timeout=1.0)
        if stubborn:
            log.warning("tasks did not end when cancelled; leaving them", extra={"count": len(stubborn)})
    return len(pending)
