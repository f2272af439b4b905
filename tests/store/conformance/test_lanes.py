"""The lane role (LaneStore) on every backend: claim order, leases, settling, release, replay, compaction, stats."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from contracts.delivery import RESPONSE_BODY_LIMIT, AttemptOutcome, ClaimedDelivery, DeliveryKind, DeliveryState
from gateway.ops.replay import with_followers
from gateway.store import DeliveryFilter, LeaseLost, Store
from tests.store.conformance.conformance_support import RAW, deliver_all
from tests.store.store_support import attempt, make_ticket, national, soon


async def test_claim_order_is_priority_then_fresh_before_retry_then_due_time(store: Store) -> None:
    async def one(name: str, priority: int = 1) -> str:
        ids = await store.enqueue(f"ticket-{name}", f"key-{name}", [national(name.encode(), priority)])
        await asyncio.sleep(0.003)  # distinct creation times
        return ids[0]

    late_retry, early_retry = await one("late-retry"), await one("early-retry")
    # Both fail once; the one settled first is due later.
    for delivery_id, due in ((late_retry, 1.0), (early_retry, 0.5)):
        [c] = await store.claim("national", "w", 30)
        assert c.delivery_id == delivery_id
        await store.settle_retry(c, attempt(c, outcome=AttemptOutcome.RETRY, status_code=503), soon(due))
    fresh_a = await one("fresh-a")
    urgent = await one("urgent", priority=0)
    fresh_b = await one("fresh-b")
    await asyncio.sleep(1.1)  # both retries are due now

    order = []
    while claimed := await store.claim("national", "w", 30):
        order.append(claimed[0].delivery_id)
    assert order == [urgent, fresh_a, fresh_b, early_retry, late_retry]


async def test_a_claim_carries_everything_needed_to_send(store: Store) -> None:
    ticket = make_ticket()
    await store.intake(ticket, RAW, "application/json", [national(b'{"n":1}')])
    before = datetime.now(UTC) - timedelta(milliseconds=1)  # the stores keep milliseconds
    [c] = await store.claim("national", "worker-1", 45)
    after = datetime.now(UTC)

    assert (c.ticket_id, c.destination, c.kind, c.body, c.content_type) == (
        ticket.ticket_id, "national", DeliveryKind.FORWARD, b'{"n":1}', "application/json")
    assert c.headers == {"x-source": "city-12345"}
    assert c.idempotency_key == ticket.idempotency_key
    assert c.attempts == 0
    assert before + timedelta(seconds=45) <= c.lease_until <= after + timedelta(seconds=45)
    receipt = await store.get_delivery(c.delivery_id)
    assert receipt is not None and receipt.state is DeliveryState.IN_FLIGHT


async def test_a_claimed_delivery_is_not_claimed_again_while_leased(store: Store) -> None:
    for n in range(5):  # five tickets: one ticket's deliveries to a lane go one after another
        await store.enqueue(f"t{n}", f"k{n}", [national()])
    batches = await asyncio.gather(*(store.claim("national", f"w{i}", 30, limit=2) for i in range(6)))
    claimed = [c.delivery_id for batch in batches for c in batch]
    assert len(claimed) == 5 and len(set(claimed)) == 5
    assert await store.claim("national", "late", 30) == []


async def test_one_tickets_deliveries_to_a_lane_go_in_the_order_they_were_enqueued(store: Store) -> None:
    first, second, third = await store.enqueue("t1", "k1", [national(), national(priority=0), national()])
    [other] = await store.enqueue("t2", "k2", [national()])
    [credit] = await store.enqueue("t1", "k1", [national(destination="credit")])

    async def claim(lane: str = "national") -> list[ClaimedDelivery]:
        return await store.claim(lane, "w", 30, limit=10)

    claimed = {c.delivery_id: c for c in await claim()}
    assert set(claimed) == {first, other}  # even the urgent second waits for the first; other tickets do not
    assert [c.delivery_id for c in await claim("credit")] == [credit]  # nor do other lanes
    head = claimed[first]
    await store.settle_retry(head, attempt(head, outcome=AttemptOutcome.RETRY, status_code=503), soon(-1))
    [head] = await claim()  # a retry keeps its place at the head
    assert head.delivery_id == first
    await store.settle_delivered(head, attempt(head))
    [head] = await claim()
    assert head.delivery_id == second
    await store.settle_dead(head, attempt(head, outcome=AttemptOutcome.PERMANENT, status_code=400))
    [head] = await claim()  # a dead letter does not hold the rest back
    assert head.delivery_id == third


async def test_a_replayed_delivery_goes_ahead_of_its_tickets_later_ones(store: Store) -> None:
    first, second, third = await store.enqueue("t1", "k1", [national(), national(), national()])
    [head] = await store.claim("national", "w", 30, limit=10)
    await store.settle_dead(head, attempt(head, outcome=AttemptOutcome.PERMANENT, status_code=400))
    [in_flight] = await store.claim("national", "w", 30, limit=10)
    assert in_flight.delivery_id == second

    assert await store.replay(delivery_ids=[first]) == [first]
    [replayed] = await store.claim("national", "w", 30, limit=10)  # the earliest again: ahead of the third
    assert replayed.delivery_id == first
    await store.settle_delivered(in_flight, attempt(in_flight))
    assert await store.claim("national", "w", 30, limit=10) == []  # the third waits for the replayed first
    await store.settle_delivered(replayed, attempt(replayed))
    assert [c.delivery_id for c in await store.claim("national", "w", 30, limit=10)] == [third]


async def test_a_replayed_dead_delivery_takes_along_the_dead_ones_behind_it_and_they_go_after_it_in_order(
        store: Store) -> None:
    first, second, third = await store.enqueue("t1", "k1", [national(), national(), national()])
    [other_ticket] = await store.enqueue("t2", "k2", [national()])
    [other_lane] = await store.enqueue("t1", "k1", [national(destination="credit")])
    for lane in ("national", "national", "national", "national", "credit"):  # every one refused, one at a time
        for c in await store.claim(lane, "w", 30, limit=10):
            await store.settle_dead(c, attempt(c, outcome=AttemptOutcome.PERMANENT, status_code=404))
    head = await store.get_delivery(first)
    assert head is not None and head.state is DeliveryState.DEAD

    chosen = await with_followers(store, [head])
    assert chosen == [first, second, third]  # not another ticket's, nor another lane's
    assert await store.replay(delivery_ids=chosen) == [first, second, third]
    for expected in (first, second, third):
        [c] = await store.claim("national", "w", 30, limit=10)  # one at a time, in their order
        assert c.delivery_id == expected
        await store.settle_delivered(c, attempt(c))
    for untouched in (other_ticket, other_lane):
        receipt = await store.get_delivery(untouched)
        assert receipt is not None and receipt.state is DeliveryState.DEAD


async def test_lanes_are_separate(store: Store) -> None:
    await store.enqueue("t1", "k1", [national(destination="enforcement")])
    assert await store.claim("national", "w", 30) == []
    assert len(await store.claim("enforcement", "w", 30)) == 1


async def test_an_expired_lease_is_returned_by_the_reaper(store: Store) -> None:
    await store.enqueue("t1", "k1", [national()])
    [first] = await store.claim("national", "crashed-worker", 0.6)
    assert await store.reap_expired_leases(datetime.now(UTC)) == 0
    await asyncio.sleep(0.7)

    assert await store.reap_expired_leases(datetime.now(UTC)) == 1
    receipt = await store.get_delivery(first.delivery_id)
    assert receipt is not None and receipt.state is DeliveryState.PENDING
    [again] = await store.claim("national", "healthy-worker", 30)
    assert again.delivery_id == first.delivery_id
    assert again.lease_token != first.lease_token
    assert again.attempts == 0


async def test_a_released_claim_is_due_again_at_once_with_no_attempt_counted(store: Store) -> None:
    head, _ = await store.enqueue("t1", "k1", [national(), national()])
    [retried] = await store.enqueue("t2", "k2", [national()])
    claimed = {c.delivery_id: c for c in await store.claim("national", "w", 30, limit=10)}
    assert set(claimed) == {head, retried}  # t1's second waits for its first
    late = claimed[retried]
    await store.settle_retry(late, attempt(late, outcome=AttemptOutcome.RETRY, status_code=503), soon(-1))
    [late] = await store.claim("national", "w", 30, limit=10)
    first = claimed[head]

    assert await store.release(first) is True
    assert await store.release(late) is True
    assert await store.release(first) is False  # no longer held: nothing changes
    pending = await store.get_delivery(head)
    retrying = await store.get_delivery(retried)
    assert pending is not None and pending.state is DeliveryState.PENDING and pending.attempts == 0
    assert retrying is not None and retrying.state is DeliveryState.RETRYING and retrying.attempts == 1
    again = {c.delivery_id: c for c in await store.claim("national", "w2", 30, limit=10)}
    assert set(again) == {head, retried}  # due at once, and in order still: t1's second waits for its first
    assert again[head].lease_token != first.lease_token
    assert await store.list_attempts(head) == []
    with pytest.raises(LeaseLost):  # the old claim cannot settle what was given back and claimed anew
        await store.settle_delivered(first, attempt(first))


async def test_settling_with_a_lost_lease_raises_lease_lost(store: Store) -> None:
    await store.enqueue("t1", "k1", [national()])
    [late] = await store.claim("national", "slow-worker", 0.1)
    await asyncio.sleep(0.2)
    await store.reap_expired_leases(datetime.now(UTC))
    [holder] = await store.claim("national", "other-worker", 30)

    with pytest.raises(LeaseLost):
        await store.settle_delivered(late, attempt(late))
    await store.settle_delivered(holder, attempt(holder))
    with pytest.raises(LeaseLost):  # settling twice is a lost lease too
        await store.settle_delivered(holder, attempt(holder))
    assert len(await store.list_attempts(holder.delivery_id)) == 1


async def test_settle_delivered_records_the_attempt(store: Store) -> None:
    await store.enqueue("t1", "k1", [national()])
    [c] = await store.claim("national", "w", 30)
    await store.settle_delivered(c, attempt(c, status_code=200))

    receipt = await store.get_delivery(c.delivery_id)
    assert receipt is not None
    assert (receipt.state, receipt.attempts, receipt.last_status_code) == (DeliveryState.DELIVERED, 1, 200)
    assert receipt.delivered_at is not None and receipt.next_attempt_at is None
    [a] = await store.list_attempts(c.delivery_id)
    assert (a.number, a.status_code, a.outcome, a.response_body) == (1, 200, AttemptOutcome.SUCCESS, '{"code":0}')
    assert await store.claim("national", "w", 30) == []


async def test_a_retry_is_not_claimable_before_it_is_due(store: Store) -> None:
    await store.enqueue("t1", "k1", [national()])
    [c] = await store.claim("national", "w", 30)
    await store.settle_retry(c, attempt(c, outcome=AttemptOutcome.RETRY, status_code=503, error_class="http_5xx"),
                             soon(1.0))

    receipt = await store.get_delivery(c.delivery_id)
    assert receipt is not None
    assert (receipt.state, receipt.attempts, receipt.last_error_class) == (DeliveryState.RETRYING, 1, "http_5xx")
    assert receipt.next_attempt_at is not None and receipt.next_attempt_at > datetime.now(UTC)
    assert await store.claim("national", "w", 30) == []
    await asyncio.sleep(1.1)
    [again] = await store.claim("national", "w", 30)
    assert (again.delivery_id, again.attempts) == (c.delivery_id, 1)


async def test_dead_letters_replay_by_filter_with_a_dry_run(store: Store) -> None:
    await store.enqueue("t1", "k1", [national()])
    [c] = await store.claim("national", "w", 30)
    await store.settle_dead(c, attempt(c, outcome=AttemptOutcome.PERMANENT, status_code=422, error_class="http_4xx",
                                       response_body='{"error":"unknown region code"}'))
    dead = await store.list_deliveries(DeliveryFilter(state=DeliveryState.DEAD))
    assert [d.delivery_id for d in dead] == [c.delivery_id]

    would = await store.replay(DeliveryFilter(destination="national"), dry_run=True)
    assert would == [c.delivery_id]
    still = await store.get_delivery(c.delivery_id)
    assert still is not None and still.state is DeliveryState.DEAD
    assert await store.claim("national", "w", 30) == []

    assert await store.replay(DeliveryFilter(destination="national")) == [c.delivery_id]
    [again] = await store.claim("national", "w", 30)
    assert (again.delivery_id, again.attempts) == (c.delivery_id, 1)
    [kept] = await store.list_attempts(c.delivery_id)
    assert kept.response_body == '{"error":"unknown region code"}'
    assert await store.replay(DeliveryFilter(destination="national")) == []  # nothing dead any more


async def test_replay_by_id_touches_only_dead_deliveries(store: Store) -> None:
    ids = await store.enqueue("t1", "k1", [national(), national()])
    first = (await store.claim("national", "w", 30))[0]
    await store.settle_dead(first, attempt(first, outcome=AttemptOutcome.PERMANENT, status_code=400))
    pending = next(i for i in ids if i != first.delivery_id)

    assert await store.replay(delivery_ids=[first.delivery_id, pending, "no-such-id"], dry_run=True) == [
        first.delivery_id]
    assert await store.replay(delivery_ids=[first.delivery_id, pending]) == [first.delivery_id]
    receipt = await store.get_delivery(first.delivery_id)
    assert receipt is not None and receipt.state is DeliveryState.PENDING and receipt.attempts == 1


async def test_a_retrying_delivery_replayed_by_id_is_due_now(store: Store) -> None:
    await store.enqueue("t1", "k1", [national()])
    [c] = await store.claim("national", "w", 30)
    await store.settle_retry(c, attempt(c, outcome=AttemptOutcome.RETRY, status_code=503), soon(3600))
    assert await store.claim("national", "w", 30) == []  # waiting out its backoff

    assert await store.replay(delivery_ids=[c.delivery_id], dry_run=True) == [c.delivery_id]
    assert await store.claim("national", "w", 30) == []  # a dry run changes nothing
    assert await store.replay(delivery_ids=[c.delivery_id]) == [c.delivery_id]
    [again] = await store.claim("national", "w", 30)
    assert (again.delivery_id, again.attempts) == (c.delivery_id, 1)


async def test_retrying_deliveries_replay_by_filter_only_when_asked_for(store: Store) -> None:
    await store.enqueue("t1", "k1", [national()])
    await store.enqueue("t2", "k2", [national()])
    [retrying] = await store.claim("national", "w", 30)
    await store.settle_retry(retrying, attempt(retrying, outcome=AttemptOutcome.RETRY, status_code=503), soon(3600))
    [dead] = await store.claim("national", "w", 30)
    await store.settle_dead(dead, attempt(dead, outcome=AttemptOutcome.PERMANENT, status_code=400))

    assert await store.replay(DeliveryFilter(destination="national"), dry_run=True) == [dead.delivery_id]
    assert await store.replay(DeliveryFilter(state=DeliveryState.RETRYING, destination="national")) == [
        retrying.delivery_id]
    [again] = await store.claim("national", "w", 30)
    assert again.delivery_id == retrying.delivery_id
    still = await store.get_delivery(dead.delivery_id)
    assert still is not None and still.state is DeliveryState.DEAD


async def test_a_replayed_delivery_carries_a_retry_budget_counted_from_its_replay(store: Store) -> None:
    [delivery_id] = await store.enqueue("t1", "k1", [national()])
    [fresh] = await store.claim("national", "w", 30)
    assert (fresh.budget_attempts, fresh.budget_since) == (0, None)  # the budget counts from creation
    await store.settle_retry(fresh, attempt(fresh, outcome=AttemptOutcome.RETRY, status_code=503), soon(-1))
    [second] = await store.claim("national", "w", 30)
    await store.settle_dead(second, attempt(second, outcome=AttemptOutcome.RETRY, status_code=503))

    before = datetime.now(UTC) - timedelta(seconds=1)
    assert await store.replay(delivery_ids=[delivery_id]) == [delivery_id]
    [replayed] = await store.claim("national", "w", 30)
    assert (replayed.attempts, replayed.budget_attempts) == (2, 2)
    assert replayed.budget_since is not None and replayed.budget_since >= before
    await store.settle_retry(replayed, attempt(replayed, outcome=AttemptOutcome.RETRY, status_code=503), soon(-1))
    [again] = await store.claim("national", "w", 30)
    assert (again.attempts, again.budget_attempts, again.budget_since) == (3, 2, replayed.budget_since)


async def test_old_delivered_deliveries_are_compacted_keeping_their_record(store: Store) -> None:
    for n in range(3):
        await store.enqueue(f"t{n}", f"k{n}", [national(), national(destination="credit")])
    claims = await store.claim("national", "w", 30, limit=10) + await store.claim("credit", "w", 30, limit=10)
    delivered, waiting = claims[:5], claims[5]
    for c in delivered:
        await store.settle_delivered(c, attempt(c, response_body='{"registration_no": "12315-1"}'))
    await store.settle_retry(waiting, attempt(waiting, outcome=AttemptOutcome.RETRY, status_code=503), soon(60))

    assert await store.compact_delivered(datetime.now(UTC) - timedelta(hours=1)) == 0  # none is that old
    assert await store.compact_delivered(datetime.now(UTC) + timedelta(seconds=1), limit=3) == 3
    assert await store.compact_delivered(datetime.now(UTC) + timedelta(seconds=1)) == 2
    assert await store.compact_delivered(datetime.now(UTC) + timedelta(seconds=1)) == 0
    for c in delivered:
        receipt = await store.get_delivery(c.delivery_id)
        assert receipt is not None and receipt.state is DeliveryState.DELIVERED and receipt.attempts == 1
        [kept] = await store.list_attempts(c.delivery_id)
        assert (kept.number, kept.status_code, kept.outcome, kept.response_body) == (1, 200, AttemptOutcome.SUCCESS,
                                                                                      None)
    [retried] = await store.list_attempts(waiting.delivery_id)  # not delivered: left whole
    assert retried.response_body == '{"code":0}'
    stats = await store.lane_stats()
    assert stats["national"]["delivered"] + stats["credit"]["delivered"] == 5


async def test_replay_without_filter_or_ids_is_refused(store: Store) -> None:
    with pytest.raises(ValueError, match="filter or delivery ids"):
        await store.replay()


async def test_list_deliveries_filters(store: Store) -> None:
    start = datetime.now(UTC) - timedelta(seconds=1)
    a = await store.intake(make_ticket("GZ-A"), RAW, "application/json", [national(), national(destination="credit")])
    b = await store.intake(make_ticket("GZ-B"), RAW, "application/json", [national()])
    claims = await store.claim("national", "w", 30, limit=2)
    for c in claims:
        if c.ticket_id == a.ticket_id:
            await store.settle_dead(c, attempt(c, outcome=AttemptOutcome.PERMANENT, status_code=404,
                                               error_class="http_4xx"))
        else:
            await store.settle_retry(c, attempt(c, outcome=AttemptOutcome.RETRY, status_code=None,
                                                error_class="timeout"), soon(60))

    async def ids(**flt: object) -> set[str]:
        return {r.delivery_id for r in await store.list_deliveries(DeliveryFilter(**flt))}  # type: ignore[arg-type]

    a_national, a_credit = a.delivery_ids
    [b_national] = b.delivery_ids
    assert await ids() == {a_national, a_credit, b_national}
    assert await ids(destination="national") == {a_national, b_national}
    assert await ids(state=DeliveryState.DEAD) == {a_national}
    assert await ids(state=DeliveryState.RETRYING) == {b_national}
    assert await ids(state=DeliveryState.PENDING) == {a_credit}
    assert await ids(error_class="timeout") == {b_national}
    assert await ids(ticket_id=a.ticket_id) == {a_national, a_credit}
    assert await ids(ticket_id=a.ticket_id, state=DeliveryState.DEAD) == {a_national}
    assert await ids(since=start) == {a_national, a_credit, b_national}
    assert await ids(until=start) == set()
    assert len(await ids(limit=2)) == 2


async def test_attempts_are_recorded_in_order_with_the_body_cut_at_16_kb(store: Store) -> None:
    await store.enqueue("t1", "k1", [national()])
    huge = "服务器内部错误" * 3000  # 21,000 characters, 63,000 bytes of UTF-8
    [c] = await store.claim("national", "w", 30)
    await store.settle_retry(c, attempt(c, outcome=AttemptOutcome.RETRY, status_code=500, response_body=huge[:16000]),
                             soon(-1))
    [c] = await store.claim("national", "w", 30)
    await store.settle_delivered(c, attempt(c, response_body="ok"))

    first, second = await store.list_attempts(c.delivery_id)
    assert (first.number, second.number) == (1, 2)
    assert first.response_body is not None
    assert len(first.response_body.encode("utf-8")) <= RESPONSE_BODY_LIMIT
    assert huge.startswith(first.response_body) and len(first.response_body) == RESPONSE_BODY_LIMIT // 3
    assert second.response_body == "ok"


async def test_lane_stats_count_by_state_and_age_the_oldest_waiting(store: Store) -> None:
    started = datetime.now(UTC)
    await store.enqueue("t1", "k1", [national(), national(), national(destination="credit")])
    await asyncio.sleep(0.05)
    [c] = await store.claim("national", "w", 30)
    await store.settle_delivered(c, attempt(c))

    stats = await store.lane_stats()
    assert stats["national"]["pending"] == 1 and stats["national"]["delivered"] == 1
    assert stats["national"]["dead"] == 0 and stats["credit"]["pending"] == 1
    waited = (datetime.now(UTC) - started).total_seconds()
    assert 0.04 < stats["national"]["oldest_waiting_age_s"] <= waited + 0.001
    await deliver_all(store)
    assert (await store.lane_stats())["national"]["oldest_waiting_age_s"] == 0.0


async def test_lane_stats_follow_every_change_of_state(store: Store) -> None:
    def counts(stats: dict[str, dict[str, float]], lane: str = "national") -> tuple[float, ...]:
        return tuple(stats[lane][s.value] for s in (DeliveryState.PENDING, DeliveryState.IN_FLIGHT,
                                                    DeliveryState.RETRYING, DeliveryState.DELIVERED,
                                                    DeliveryState.DEAD))

    for n in range(6):
        await store.enqueue(f"t{n}", f"k{n}", [national()])
    await store.enqueue("t-credit", "k-credit", [national(destination="credit")])
    assert counts(await store.lane_stats()) == (6, 0, 0, 0, 0)

    a, b, c, d, _ = await store.claim("national", "w", 30, limit=5)  # the fifth: its lease runs out
    assert counts(await store.lane_stats()) == (1, 5, 0, 0, 0)
    await store.settle_delivered(a, attempt(a))
    await store.settle_retry(b, attempt(b, outcome=AttemptOutcome.RETRY, status_code=503), soon(60))
    await store.settle_dead(c, attempt(c, outcome=AttemptOutcome.PERMANENT, status_code=400))
    assert await store.release(d)
    assert counts(await store.lane_stats()) == (2, 1, 1, 1, 1)

    await store.reap_expired_leases(datetime.now(UTC) + timedelta(seconds=60))  # the fifth claim's lease is over
    assert counts(await store.lane_stats()) == (3, 0, 1, 1, 1)
    assert await store.replay(delivery_ids=[c.delivery_id, b.delivery_id]) == [b.delivery_id, c.delivery_id]
    assert counts(await store.lane_stats()) == (4, 0, 1, 1, 0)  # the retry stays retrying, due now

    assert await deliver_all(store) == 5
    assert counts(await store.lane_stats()) == (0, 0, 0, 6, 0)
    assert counts(await store.lane_stats(), "credit") == (1, 0, 0, 0, 0)
