"""The delivery engine against a real receiver and real stores: retries, dead letters, breaker, rate limit, replay."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from adapters.destination import DestinationConfig
from adapters.wire.results import SendResult
from contracts.delivery import AttemptOutcome, AttemptReceipt, ClaimedDelivery, DeliveryKind, DeliveryState, OutboxEntry
from gateway.delivery.breaker import BreakerState
from gateway.delivery.engine import _UNSETTLED_FACTOR, AttemptListener, DeliveryEngine, SendRate
from gateway.delivery.policy import Decision, DecisionKind, backoff_bounds
from gateway.store.base import DeliveryFilter, Store
from simulators.receiver import Action, Receiver
from tests.delivery.delivery_support import FAST_ENGINE, destination, enqueue, eventually, settled


async def total_attempts(store: Store, ids: list[tuple[str, str]]) -> int:
    total = 0
    for delivery_id, _ in ids:
        receipt = await store.get_delivery(delivery_id)
        assert receipt is not None
        total += receipt.attempts
    return total


@asynccontextmanager
async def running(store: Store, *destinations: DestinationConfig, **kwargs: Any) -> AsyncIterator[DeliveryEngine]:
    engine = DeliveryEngine(store, list(destinations), settings=FAST_ENGINE, **kwargs)
    async with engine.run_in_app():
        yield engine


async def test_a_delivery_reaches_the_receiver_with_its_idempotency_key(store: Store, receiver: Receiver) -> None:
    dest = destination(receiver)
    [(delivery_id, key)] = await enqueue(store, dest.name, 1)
    async with running(store, dest):
        receipt = await settled(store, delivery_id)
    assert receipt.state is DeliveryState.DELIVERED
    assert receiver.counts() == {key: 1}
    [attempt] = await store.list_attempts(delivery_id)
    assert (attempt.number, attempt.status_code, attempt.outcome) == (1, 200, AttemptOutcome.SUCCESS)
    assert attempt.response_body == '{"ok": true}'


async def test_5xx_is_retried_until_success(store: Store, receiver: Receiver) -> None:
    receiver.script(per_key=[Action(status=503), Action(status=500)])
    dest = destination(receiver)
    [(delivery_id, key)] = await enqueue(store, dest.name, 1)
    async with running(store, dest):
        receipt = await settled(store, delivery_id)
    assert receipt.state is DeliveryState.DELIVERED
    assert receipt.attempts == 3
    attempts = await store.list_attempts(delivery_id)
    assert [(a.status_code, a.error_class, a.outcome) for a in attempts] == [
        (503, "http_503", AttemptOutcome.RETRY), (500, "http_500", AttemptOutcome.RETRY),
        (200, None, AttemptOutcome.SUCCESS)]
    assert receiver.counts()[key] == 3


async def test_listeners_hear_every_settled_attempt_and_status_counts_them(
        store: Store, receiver: Receiver) -> None:
    receiver.script(per_key=[Action(status=503)])
    dest = destination(receiver)
    heard: list[tuple[str, int, str]] = []
    [(delivery_id, _)] = await enqueue(store, dest.name, 1)
    listener = lambda d, a, dec: heard.append((d, a.number, dec.kind.value))  # noqa: E731
    async with running(store, dest, listeners=[listener]) as engine:
        await settled(store, delivery_id)
        counters = engine.status()[dest.name].counters
    assert heard == [(dest.name, 1, "retry"), (dest.name, 2, "delivered")]
    assert counters["attempts"] == 2
    assert counters["retry"] == 1
    assert counters["delivered"] == 1


async def test_permanent_4xx_goes_to_dead_letters_with_every_attempt_kept(store: Store, receiver: Receiver) -> None:
    receiver.script(per_key=[Action(status=503), Action(status=422, body='{"error": "region_code 999999 unknown"}')])
    dest = destination(receiver)
    [(delivery_id, key)] = await enqueue(store, dest.name, 1)
    async with running(store, dest):
        receipt = await settled(store, delivery_id)
        await asyncio.sleep(0.2)  # nothing more is sent for a dead letter
    assert receipt.state is DeliveryState.DEAD
    assert receipt.last_status_code == 422
    attempts = await store.list_attempts(delivery_id)
    assert [(a.number, a.status_code, a.outcome) for a in attempts] == [
        (1, 503, AttemptOutcome.RETRY), (2, 422, AttemptOutcome.PERMANENT)]
    assert attempts[1].response_body == '{"error": "region_code 999999 unknown"}'
    assert receiver.counts()[key] == 2
    dead = await store.list_deliveries(DeliveryFilter(state=DeliveryState.DEAD, destination=dest.name))
    assert [d.delivery_id for d in dead] == [delivery_id]


async def test_attempts_run_out_into_dead_letters(store: Store, receiver: Receiver) -> None:
    receiver.script(default=Action(status=502))
    dest = destination(receiver, retry={"max_attempts": 3})
    [(delivery_id, key)] = await enqueue(store, dest.name, 1)
    async with running(store, dest):
        receipt = await settled(store, delivery_id)
    assert (receipt.state, receipt.attempts) == (DeliveryState.DEAD, 3)
    assert receiver.counts()[key] == 3


async def test_a_timeout_is_retried(store: Store, receiver: Receiver) -> None:
    receiver.script(per_key=[Action(delay=60)])  # unless the client leaves first
    dest = destination(receiver, timeout={"connect": 0.3, "total": 0.3})
    [(delivery_id, _)] = await enqueue(store, dest.name, 1)
    async with running(store, dest):
        receipt = await settled(store, delivery_id)
    assert receipt.state is DeliveryState.DELIVERED
    first, second = await store.list_attempts(delivery_id)
    assert (first.status_code, first.error_class, first.outcome) == (None, "timeout", AttemptOutcome.RETRY)
    assert first.duration_ms > 250  # the timeout; not the minute, or the attempt would have had its answer
    assert second.outcome is AttemptOutcome.SUCCESS


async def test_a_dropped_connection_is_retried(store: Store, receiver: Receiver) -> None:
    receiver.script(per_key=[Action(drop=True)])
    dest = destination(receiver)
    [(delivery_id, _)] = await enqueue(store, dest.name, 1)
    async with running(store, dest):
        receipt = await settled(store, delivery_id)
    first, _ = await store.list_attempts(delivery_id)
    assert (receipt.state, first.error_class) == (DeliveryState.DELIVERED, "connection_dropped")


async def test_the_retry_is_scheduled_within_the_jitter_bounds(store: Store, receiver: Receiver) -> None:
    receiver.script(per_key=[Action(status=503)] * 2)
    dest = destination(receiver, retry={"backoff": "schedule", "schedule": [0.4, 0.8], "schedule_jitter_percent": 25})
    [(delivery_id, key)] = await enqueue(store, dest.name, 1)
    async with running(store, dest):
        await settled(store, delivery_id)
    times = [r.monotonic for r in receiver.requests(key)]
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    for n, gap in enumerate(gaps, start=1):
        low, high = backoff_bounds(dest.retry, n)
        # The gap also holds the attempt's own round trip and the lane's poll interval.
        assert low - 0.01 <= gap <= high + 0.5, (n, gap, low, high)


def decisions_of(destination: str) -> tuple[list[Decision], AttemptListener]:
    """The engine's decisions after each attempt on a lane, and the listener that collects them: how long a retry
    was scheduled to wait is read from the decision, not from a clock that a loaded machine slows down."""
    decisions: list[Decision] = []

    def listen(lane: str, _: AttemptReceipt, decision: Decision) -> None:
        if lane == destination:
            decisions.append(decision)
    return decisions, listen


async def test_retry_after_is_honoured(store: Store, receiver: Receiver) -> None:
    receiver.script(per_key=[Action(status=429, retry_after="1")])
    dest = destination(receiver, retry={"retry_after_min": 0, "retry_after_max": 5})
    [(delivery_id, key)] = await enqueue(store, dest.name, 1)
    decisions, listen = decisions_of(dest.name)
    async with running(store, dest, listeners=[listen]):
        await settled(store, delivery_id)
    first, second = (r.monotonic for r in receiver.requests(key))
    assert second - first >= 1.0  # waited the second it was asked to
    retry, _ = decisions
    assert retry.kind is DecisionKind.RETRY and retry.delay is not None
    assert 1.0 <= retry.delay < 2.0  # and no longer (the backoff alone is far shorter, the policy allows 5 s)


async def test_retry_after_is_bounded_by_the_policy(store: Store, receiver: Receiver) -> None:
    a_day_later = (datetime.now(UTC) + timedelta(days=1)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    receiver.script(per_key=[Action(status=503, retry_after=a_day_later)])
    dest = destination(receiver, retry={"retry_after_min": 0, "retry_after_max": 0.5})
    [(delivery_id, key)] = await enqueue(store, dest.name, 1)
    decisions, listen = decisions_of(dest.name)
    async with running(store, dest, listeners=[listen]):
        receipt = await settled(store, delivery_id)
    first, second = (r.monotonic for r in receiver.requests(key))
    assert receipt.state is DeliveryState.DELIVERED
    assert second - first >= 0.5
    retry, _ = decisions
    assert retry.delay is not None and 0.5 <= retry.delay < 1.5  # not a day


async def test_a_retry_after_pauses_the_whole_lane(store: Store, receiver: Receiver) -> None:
    receiver.script(sequence=[Action(status=429, retry_after="1")])
    dest = destination(receiver, concurrency=1, retry={"retry_after_min": 0})
    ids = await enqueue(store, dest.name, 3)
    async with running(store, dest):
        for delivery_id, _ in ids:
            await settled(store, delivery_id)
    times = [r.monotonic for r in receiver.requests()]
    assert times[1] - times[0] >= 1.0  # the next delivery waited too, not only the throttled one


async def test_a_claim_queued_behind_a_longer_pause_is_given_back_without_an_attempt(
        store: Store, receiver: Receiver) -> None:
    # One send at a time. 80 quick answers give the lane a rate, so it claims ahead of its worker; then one
    # is answered 429 with Retry-After 2 s. The lane pauses, and the claims queued behind it cannot wait
    # that long within their 2.2 s leases: they are not sent, no attempt is counted, and they are given back
    # to the lane at once (not left to the reaper); they go once the pause is over.
    warm_up = [Action(delay=0.02)] * 80
    receiver.script(sequence=[*warm_up, Action(status=429, retry_after="2")])
    dest = destination(receiver, concurrency=1, timeout={"connect": 0.5, "total": 1}, lease=2.2,
                       retry={"retry_after_min": 0, "retry_after_max": 5})
    ids = await enqueue(store, dest.name, len(warm_up) + 6)
    async with running(store, dest) as engine:
        receipts = [await settled(store, delivery_id, within=20) for delivery_id, _ in ids]
        counters = engine.status()[dest.name].counters
    assert [r.state for r in receipts] == [DeliveryState.DELIVERED] * len(ids)
    assert sorted(r.attempts for r in receipts) == [1] * (len(ids) - 1) + [2]  # only the throttled one twice
    assert counters.get("released", 0) >= 1 and counters.get("left_to_lease", 0) == 0
    answered = [(r.monotonic, r.answered) for r in receiver.requests()]
    throttled = next(i for i, (_, status) in enumerate(answered) if status == 429)
    assert answered[throttled + 1][0] - answered[throttled][0] >= 2.0  # nothing went out during the pause


async def test_claims_held_back_by_a_pause_are_given_back_at_stop_not_left_in_flight(
        store: Store, receiver: Receiver) -> None:
    # The lane claims ahead of its worker, then is paused for 30 s by a 429. Its queued claims may wait that
    # long within their 60 s leases; stopping the engine ends the wait at once and gives them back, so the
    # next start (or another worker) need not wait out their leases: they are pending again, not left in flight
    # (a stop that waited for them would have cancelled them after its grace, in flight until their leases end).
    # The lane's clock (its send rate and its pause) moves by hand: the rate that makes it claim ahead is the
    # first second's warm-up sends however slowly a loaded machine makes them, and the pause never runs out.
    warm_up = [Action(delay=0.02)] * 80
    receiver.script(sequence=[*warm_up, Action(status=429, retry_after="30")])
    dest = destination(receiver, concurrency=1, lease=60, retry={"retry_after_min": 0, "retry_after_max": 60})
    ids = await enqueue(store, dest.name, len(warm_up) + 6)
    second = [0.0]
    async with running(store, dest, clock=lambda: second[0]) as engine:
        async def warming_up() -> bool:
            return len(receiver.requests()) >= 30
        await eventually(warming_up, within=60)
        second[0] = 1.0  # the lane has sent 30 or more in second 0: it claims ahead from now on

        async def held_back() -> bool:
            status = engine.status()[dest.name]
            return await _answered(receiver, 429) and status.paused_for > 0 and status.queued >= 1
        await eventually(held_back, within=60)
    counters = engine.status()[dest.name].counters
    states = Counter(r.state for r in [await store.get_delivery(i) for i, _ in ids] if r is not None)
    assert counters.get("released", 0) >= 1 and counters.get("left_to_lease", 0) == 0, counters
    assert states == {DeliveryState.DELIVERED: 80, DeliveryState.RETRYING: 1, DeliveryState.PENDING: 5}, states


async def _answered(receiver: Receiver, status: int) -> bool:
    return any(r.answered == status for r in receiver.requests())


async def test_a_slow_destination_gets_no_claims_ahead(store: Store, receiver: Receiver) -> None:
    # Sends taking 0.3 s: about 7 a second on two workers, under one delivery's worth of _AHEAD_SECONDS, so
    # nothing is claimed for the queue (where its lease would run down) beyond what the workers take.
    receiver.script(default=Action(delay=0.3))
    dest = destination(receiver, concurrency=2)
    ids = await enqueue(store, dest.name, 10)
    seen: list[tuple[int, int]] = []
    async with running(store, dest) as engine:
        async def all_settled() -> bool:
            status = engine.status()[dest.name]
            seen.append((status.in_flight, status.queued))
            receipts = [await store.get_delivery(i) for i, _ in ids]
            return all(r is not None and r.state is DeliveryState.DELIVERED for r in receipts)
        await eventually(all_settled, within=10, poll=0.02)
        counters = engine.status()[dest.name].counters
    assert max(in_flight + queued for in_flight, queued in seen) == 2  # claimed: only what the workers take
    assert counters.get("released", 0) == counters.get("left_to_lease", 0) == 0 and counters["claimed"] == 10


def test_the_send_rate_is_the_last_whole_seconds_count() -> None:
    now = [100.2]
    rate = SendRate(lambda: now[0])
    for _ in range(5):
        rate.count()
    assert rate.per_second() == 0  # the second is not over
    now[0] = 101.5
    rate.count()
    assert rate.per_second() == 5
    now[0] = 102.0
    assert rate.per_second() == 1
    now[0] = 104.0  # a second went by without a send
    assert rate.per_second() == 0


async def test_the_breaker_opens_on_failures_and_closes_when_the_receiver_recovers(
        store: Store, receiver: Receiver) -> None:
    receiver.set_outage(Action(status=503))
    dest = destination(receiver, concurrency=2,
                       breaker={"enabled": True, "failure_ratio": 0.5, "window": 10, "min_calls": 4, "cool_down": 1.0},
                       retry={"initial_delay": 0.05, "max_delay": 0.05, "max_attempts": 100})
    ids = await enqueue(store, dest.name, 10)
    async with running(store, dest) as engine:
        lane = engine.lanes[dest.name]
        assert lane.breaker is not None
        breaker = lane.breaker

        async def opened() -> bool:
            return breaker.state is BreakerState.OPEN
        await eventually(opened, within=5, poll=0.005)
        sent_when_opened = len(receiver.requests())
        await asyncio.sleep(max(breaker.reopens_in() - 0.1, 0))  # the cool-down: nothing may go out
        assert len(receiver.requests()) <= sent_when_opened + 1  # at most one send already under way
        attempts_before = await total_attempts(store, ids)

        # Still failing at the end of the cool-down: the one probe fails and the breaker opens again.
        async def reopened() -> bool:
            return breaker.times_opened >= 2
        await eventually(reopened, within=5, poll=0.005)
        attempts_after = await total_attempts(store, ids)
        assert attempts_after - attempts_before <= 2  # the probe (and a send that was under way)

        receiver.set_outage(None)
        for delivery_id, _ in ids:
            receipt = await settled(store, delivery_id, within=10)
            assert receipt.state is DeliveryState.DELIVERED
        assert breaker.state is BreakerState.CLOSED
        assert engine.status()[dest.name].breaker.state is BreakerState.CLOSED  # type: ignore[union-attr]


async def test_the_rate_limit_is_respected(store: Store, receiver: Receiver) -> None:
    dest = destination(receiver, concurrency=8, rate_limit={"rate": 20, "burst": 2})
    ids = await enqueue(store, dest.name, 22)
    started = time.monotonic()
    async with running(store, dest):
        for delivery_id, _ in ids:
            await settled(store, delivery_id)
    times = sorted(r.monotonic for r in receiver.requests())
    assert len(times) == 22
    assert times[-1] - started >= (22 - 2) / 20 - 0.05  # a burst of 2, then 20 a second
    for i, t in enumerate(times):
        in_one_second = sum(1 for u in times[i:] if u - t < 1.0)
        assert in_one_second <= 20 + 2


async def test_a_replayed_dead_letter_is_delivered(store: Store, receiver: Receiver) -> None:
    receiver.script(per_key=[Action(status=400, body='{"error": "missing complainant phone"}')])
    dest = destination(receiver)
    [(delivery_id, key)] = await enqueue(store, dest.name, 1)
    async with running(store, dest) as engine:
        assert (await settled(store, delivery_id)).state is DeliveryState.DEAD
        assert await store.replay(delivery_ids=[delivery_id], dry_run=True) == [delivery_id]
        assert (await store.get_delivery(delivery_id)).state is DeliveryState.DEAD  # type: ignore[union-attr]
        assert await store.replay(delivery_ids=[delivery_id]) == [delivery_id]
        engine.wake(dest.name)
        receipt = await settled(store, delivery_id)
    assert receipt.state is DeliveryState.DELIVERED
    attempts = await store.list_attempts(delivery_id)
    assert [(a.number, a.status_code) for a in attempts] == [(1, 400), (2, 200)]
    assert receiver.counts()[key] == 2


async def test_a_replayed_dead_letter_gets_the_whole_retry_budget_again(store: Store, receiver: Receiver) -> None:
    receiver.script(per_key=[Action(status=503)] * 3)  # down for two attempts, and for the first after replay
    dest = destination(receiver, retry={"initial_delay": 0.05, "max_delay": 0.2, "jitter": "none", "max_attempts": 2})
    [(delivery_id, key)] = await enqueue(store, dest.name, 1)
    async with running(store, dest) as engine:
        assert (await settled(store, delivery_id)).state is DeliveryState.DEAD  # two attempts: the budget
        assert await store.replay(delivery_ids=[delivery_id]) == [delivery_id]
        engine.wake(dest.name)
        receipt = await settled(store, delivery_id)
    # After the replay a failure is retried again (two more attempts), not dead-lettered at once.
    assert receipt.state is DeliveryState.DELIVERED
    attempts = await store.list_attempts(delivery_id)
    assert [(a.number, a.status_code) for a in attempts] == [(1, 503), (2, 503), (3, 503), (4, 200)]
    assert receiver.counts()[key] == 4


async def test_lanes_are_independent(store: Store, receiver: Receiver) -> None:
    receiver.set_outage(None)
    slow = destination(receiver, name=None, concurrency=1, timeout={"connect": 0.5, "total": 0.5})
    fast = destination(receiver, concurrency=4)
    receiver.script(default=Action(delay=0.01))
    await enqueue(store, slow.name, 3, prefix="slow")
    fast_ids = await enqueue(store, fast.name, 8, prefix="fast")
    receiver.script(per_key=[])
    async with running(store, slow, fast):
        for delivery_id, _ in fast_ids:
            assert (await settled(store, delivery_id)).state is DeliveryState.DELIVERED


async def test_stop_lets_sends_in_flight_finish_and_settle(store: Store, receiver: Receiver) -> None:
    receiver.script(default=Action(delay=0.5))
    dest = destination(receiver, concurrency=3)
    ids = await enqueue(store, dest.name, 3)
    engine = DeliveryEngine(store, [dest], settings=FAST_ENGINE)
    await engine.start()
    await asyncio.to_thread(receiver.wait_until, lambda rx: len(rx.requests()) == 3, 5)
    await engine.stop(grace=3)
    for delivery_id, _ in ids:
        assert (await store.get_delivery(delivery_id)).state is DeliveryState.DELIVERED  # type: ignore[union-attr]


async def test_stop_after_the_grace_leaves_unfinished_sends_to_their_lease(store: Store, receiver: Receiver) -> None:
    receiver.script(default=Action(delay=60))  # answered after a minute, unless the client leaves first
    dest = destination(receiver, concurrency=1, timeout={"connect": 1, "total": 90}, lease=120)
    [(delivery_id, _)] = await enqueue(store, dest.name, 1)
    engine = DeliveryEngine(store, [dest], settings=FAST_ENGINE)
    await engine.start()
    await asyncio.to_thread(receiver.wait_until, lambda rx: len(rx.requests()) == 1, 5)
    await engine.stop(grace=0.1)
    receipt = await store.get_delivery(delivery_id)
    assert receipt is not None
    # Not waited for: a stop that let the send run its minute would have settled it delivered, one attempt.
    assert receipt.state is DeliveryState.IN_FLIGHT  # until the lease runs out; then it is sent again
    assert receipt.attempts == 0


class CancellationSwallowingSender:
    """Ignores its first cancellation, as redis-py sometimes does (redis/redis-py#2028)."""

    def __init__(self) -> None:
        self.released = asyncio.Event()  # the test lets the stubborn send end
        self.ended = asyncio.Event()

    async def send(self, claim: ClaimedDelivery) -> SendResult:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            await self.released.wait()
        self.ended.set()
        return SendResult(status_code=200)

    async def aclose(self) -> None:
        return None


class FirstAnswerBrokenSender:
    """A buggy sender kind: its first call returns nothing usable; the others answer 200."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    async def send(self, claim: ClaimedDelivery) -> SendResult:
        self.calls.append(claim.delivery_id)
        if len(self.calls) == 1:
            return None  # type: ignore[return-value]
        return SendResult(status_code=200)

    async def aclose(self) -> None:
        return None


async def test_an_engine_error_frees_the_send_slot_and_the_delivery_goes_after_its_lease(
        store: Store, receiver: Receiver) -> None:
    # One send worker. The first attempt breaks inside the engine: it is not settled, the worker goes on with
    # the next delivery (its slot is free), and the broken one is sent again once its lease ran out.
    dest = destination(receiver, concurrency=1, timeout={"connect": 0.5, "total": 1}, lease=2.2)
    sender = FirstAnswerBrokenSender()
    ids = await enqueue(store, dest.name, 3)
    async with running(store, dest, senders={dest.name: sender}) as engine:
        receipts = [await settled(store, delivery_id, within=10) for delivery_id, _ in ids]
        counters = engine.status()[dest.name].counters
        status = engine.status()[dest.name]
    assert [r.state for r in receipts] == [DeliveryState.DELIVERED] * 3
    assert counters["attempt_errors"] == 1
    broken = sender.calls[0]
    assert sender.calls.count(broken) == 2 and sender.calls[-1] == broken  # again, after the other two
    assert status.in_flight == 0 and status.queued == 0


async def test_stop_returns_even_when_a_send_ignores_its_cancellation(store: Store, receiver: Receiver) -> None:
    dest = destination(receiver)
    await enqueue(store, dest.name, 1)
    sender = CancellationSwallowingSender()
    engine = DeliveryEngine(store, [dest], settings=FAST_ENGINE, senders={dest.name: sender})
    await engine.start()

    async def sending() -> bool:
        return engine.status()[dest.name].in_flight == 1
    await eventually(sending)
    await asyncio.wait_for(engine.stop(grace=0.1), timeout=30)  # the send would never end by itself
    assert not sender.ended.is_set()
    sender.released.set()  # let the stubborn send end before the store closes
    await asyncio.wait_for(sender.ended.wait(), timeout=30)


async def test_an_expired_lease_is_reaped_and_sent_again(store: Store, receiver: Receiver) -> None:
    dest = destination(receiver, timeout={"connect": 0.2, "total": 0.2}, lease=1.3)
    [(delivery_id, key)] = await enqueue(store, dest.name, 1)
    [claim] = await store.claim(dest.name, "a-worker-that-dies", dest.lease_seconds)
    assert claim.delivery_id == delivery_id
    async with running(store, dest):
        receipt = await settled(store, delivery_id, within=5)
    assert receipt.state is DeliveryState.DELIVERED
    assert receiver.counts() == {key: 1}


def test_the_engine_refuses_a_lease_shorter_than_the_timeout(receiver: Receiver) -> None:
    dest = destination(receiver).model_copy(update={"lease": 1.0})  # skips validation on purpose
    with pytest.raises(ValueError, match="lease must outlive"):
        DeliveryEngine(None, [dest])  # type: ignore[arg-type]


class HeldSettles:
    """The real store, except that settles wait until released: a store thread or Redis that is slow to write."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.release = asyncio.Event()
        self.waiting = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def settle_delivered(self, claim: ClaimedDelivery, attempt: Any) -> None:
        self.waiting += 1
        await self.release.wait()
        await self._store.settle_delivered(claim, attempt)


async def test_a_finished_send_frees_its_slot_before_its_settle_lands(store: Store, receiver: Receiver) -> None:
    dest = destination(receiver, concurrency=2)
    bound = _UNSETTLED_FACTOR * dest.concurrency  # between claim and settle, at most
    ids = await enqueue(store, dest.name, bound + 4)
    held = HeldSettles(store)
    engine = DeliveryEngine(held, [dest], settings=FAST_ENGINE)  # type: ignore[arg-type]
    await engine.start()
    try:
        # Sends go on while settles wait, up to the bound between claim and settle, then stop.
        await asyncio.to_thread(receiver.wait_until, lambda rx: len(rx.requests()) == bound, 5)
        await asyncio.sleep(0.3)
        assert len(receiver.requests()) == bound and held.waiting == bound
        assert engine.status()[dest.name].in_flight == 0  # no send in flight: all of them are settling
        held.release.set()
        for delivery_id, _ in ids:
            assert (await settled(store, delivery_id)).state is DeliveryState.DELIVERED
        assert len(receiver.requests()) == bound + 4
    finally:
        held.release.set()
        await engine.stop()


async def test_a_tickets_status_callbacks_arrive_in_order_even_when_the_first_is_retried(
        store: Store, receiver: Receiver) -> None:
    receiver.script(sequence=[Action(status=503), Action(status=503)])  # the first two requests fail
    dest = destination(receiver, concurrency=4)
    keys = [f"ticket-7:{status}" for status in ("accepted", "mediating", "closed")]  # 受理, 调解, 办结
    ids = await store.enqueue("ticket-7", "ticket-7", [
        OutboxEntry(destination=dest.name, kind=DeliveryKind.CALLBACK, body=key.encode(), idempotency_key=key)
        for key in keys])
    async with running(store, dest):
        for delivery_id in ids:
            assert (await settled(store, delivery_id)).state is DeliveryState.DELIVERED
    # Four sends could go at once, but 调解 waited until 受理 was answered 2xx, and 办结 until 调解 was.
    assert [(r.key, r.answered) for r in receiver.requests()] == [
        (keys[0], 503), (keys[0], 503), (keys[0], 200), (keys[1], 200), (keys[2], 200)]
