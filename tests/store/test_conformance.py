"""The store conformance specification: every behaviour here holds on SQLite and on Redis alike."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from contracts.delivery import (
    RESPONSE_BODY_LIMIT,
    AttemptOutcome,
    ClaimedDelivery,
    DeliveryKind,
    DeliveryState,
    OutboxEntry,
)
from contracts.errors import FieldError
from gateway.store.base import (
    AuditEntry,
    AuditQuery,
    ConcurrentUpdate,
    DeliveryFilter,
    LeaseLost,
    Store,
    TicketQuery,
    UnknownTicket,
)
from tests.store.store_support import RESPONDENT_USCC, attempt, make_ticket, national, soon

RAW = '{"hotlineNo":"GZ-12345-20240611-0001","appealContent":"预包装食品无生产日期"}'.encode()


async def _deliver_all(store: Store, lane: str = "national") -> int:
    n = 0
    while claimed := await store.claim(lane, "cleaner", 30, limit=50):
        for c in claimed:
            await store.settle_delivered(c, attempt(c))
            n += 1
    return n


# -- intake ------------------------------------------------------------------------------------------

async def test_intake_stores_ticket_raw_payload_and_deliveries_in_one_step(store: Store) -> None:
    ticket = make_ticket()
    result = await store.intake(ticket, RAW, "application/json", [national(), national(destination="credit")])

    assert result.created
    assert result.ticket_id == ticket.ticket_id
    assert len(result.delivery_ids) == 2
    assert await store.get_ticket(ticket.ticket_id) == ticket
    assert await store.get_raw_payload(ticket.ticket_id) == (RAW, "application/json")
    receipts = await store.list_deliveries(DeliveryFilter(ticket_id=ticket.ticket_id))
    assert {r.delivery_id for r in receipts} == set(result.delivery_ids)
    assert {r.destination for r in receipts} == {"national", "credit"}
    assert all(r.state is DeliveryState.PENDING and r.idempotency_key == ticket.idempotency_key
               for r in receipts)


async def test_intake_stores_the_ticket_json_it_is_given(store: Store) -> None:
    ticket = make_ticket()
    result = await store.intake(ticket, RAW, "application/json", [national()], ticket_json=ticket.model_dump_json())

    assert result.created
    assert await store.get_ticket(ticket.ticket_id) == ticket


async def test_a_repeated_push_returns_the_existing_ticket_id_and_enqueues_nothing(store: Store) -> None:
    first = await store.intake(make_ticket(), RAW, "application/json", [national()])
    again = make_ticket()  # same source system, number and version; a new ticket id of its own
    repeat = await store.intake(again, RAW, "application/json", [national()])

    assert not repeat.created
    assert repeat.ticket_id == first.ticket_id
    assert repeat.delivery_ids == ()
    assert await store.get_ticket(again.ticket_id) is None
    assert len(await store.list_deliveries(DeliveryFilter(destination="national"))) == 1


async def test_pushing_the_very_same_ticket_twice_is_a_repeat(store: Store) -> None:
    ticket = make_ticket()
    first = await store.intake(ticket, RAW, "application/json", [national()])
    again = await store.intake(ticket, RAW, "application/json", [national()])
    assert (again.ticket_id, again.created) == (first.ticket_id, False)


async def test_a_new_source_version_is_a_new_ticket(store: Store) -> None:
    first = await store.intake(make_ticket(version="1"), RAW, "application/json", [])
    second = await store.intake(make_ticket(version="2"), RAW, "application/json", [])
    assert second.created and second.ticket_id != first.ticket_id


async def test_twenty_racing_identical_pushes_create_one_ticket(store: Store) -> None:
    results = await asyncio.gather(*(
        store.intake(make_ticket(), RAW, "application/json", [national()]) for _ in range(20)
    ))
    assert sum(r.created for r in results) == 1
    assert len({r.ticket_id for r in results}) == 1
    assert len(await store.list_deliveries(DeliveryFilter())) == 1


async def test_racing_pushes_through_two_connections_create_one_ticket(
        open_store: Callable[[], Awaitable[Store]]) -> None:
    one, two = await open_store(), await open_store()
    results = await asyncio.gather(*(
        (one if i % 2 else two).intake(make_ticket(), RAW, "application/json", [national()]) for i in range(20)
    ))
    assert sum(r.created for r in results) == 1
    assert len({r.ticket_id for r in results}) == 1
    assert len(await one.list_deliveries(DeliveryFilter())) == 1


async def test_an_invalid_destination_name_is_refused_before_anything_is_stored(store: Store) -> None:
    ticket = make_ticket()
    with pytest.raises(ValueError, match="cannot name a delivery lane"):
        await store.intake(ticket, RAW, "application/json", [national(destination="{bad} lane")])
    assert await store.get_ticket(ticket.ticket_id) is None


# -- tickets -----------------------------------------------------------------------------------------

async def test_find_ticket_by_idempotency_key_and_by_national_number(store: Store) -> None:
    ticket = make_ticket()
    await store.intake(ticket, RAW, "application/json", [])
    assert ticket.idempotency_key is not None
    assert await store.find_ticket_id(idempotency_key=ticket.idempotency_key) == ticket.ticket_id
    assert await store.find_ticket_id(national_registration_no="12315-5226-0001") is None

    ticket.national_registration_no = "12315-5226-0001"
    await store.save_ticket(ticket, [])
    assert await store.find_ticket_id(national_registration_no="12315-5226-0001") == ticket.ticket_id
    assert await store.find_ticket_id(idempotency_key="0" * 64) is None


async def test_save_ticket_replaces_it_and_enqueues_its_outbox(store: Store) -> None:
    ticket = make_ticket()
    await store.intake(ticket, RAW, "application/json", [])
    ticket.lifecycle.last_sequence = 0
    ticket.registration.title = "食品标签咨询"
    callback = OutboxEntry(destination="callback:city-12345-rest", kind=DeliveryKind.CALLBACK,
                           body=b'{"handleStatus":"1"}', idempotency_key="status-event-0")
    ids = await store.save_ticket(ticket, [callback], expected_sequence=-1)

    stored = await store.get_ticket(ticket.ticket_id)
    assert stored is not None and stored.registration.title == "食品标签咨询"
    assert len(ids) == 1
    receipt = await store.get_delivery(ids[0])
    assert receipt is not None
    assert (receipt.kind, receipt.idempotency_key) == (DeliveryKind.CALLBACK, "status-event-0")


async def test_save_ticket_with_a_stale_sequence_raises_concurrent_update(store: Store) -> None:
    ticket = make_ticket()
    await store.intake(ticket, RAW, "application/json", [])
    ticket.lifecycle.last_sequence = 0
    await store.save_ticket(ticket, [], expected_sequence=-1)

    ticket.lifecycle.last_sequence = 1
    with pytest.raises(ConcurrentUpdate):
        await store.save_ticket(ticket, [national()], expected_sequence=-1)
    stored = await store.get_ticket(ticket.ticket_id)
    assert stored is not None and stored.lifecycle.last_sequence == 0
    assert await store.list_deliveries(DeliveryFilter(ticket_id=ticket.ticket_id)) == []


async def test_saving_a_ticket_never_stored_raises_unknown_ticket(store: Store) -> None:
    with pytest.raises(UnknownTicket):
        await store.save_ticket(make_ticket(), [])


async def test_search_finds_a_ticket_by_phone_written_in_any_form(store: Store) -> None:
    ticket = make_ticket(phone="13800138000")
    await store.intake(ticket, RAW, "application/json", [])
    await store.intake(make_ticket("GZ-OTHER-1", phone="13900139000"), RAW, "application/json", [])

    for written in ("13800138000", "+86 138 0013 8000", "１３８００１３８０００"):
        found = await store.search_tickets(TicketQuery(complainant_phone=written))
        assert [t.ticket_id for t in found] == [ticket.ticket_id]


async def test_search_by_respondent_adapter_status_and_time(store: Store) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    shop = make_ticket("GZ-A", respondent="凯里市某超市有限公司", uscc=RESPONDENT_USCC)
    other = make_ticket("GZ-B", adapter_id="prov-12345-soap")
    await store.intake(shop, RAW, "application/json", [])
    await asyncio.sleep(0.01)
    await store.intake(other, RAW, "application/json", [])

    async def ids(**query: object) -> list[str]:
        return [t.ticket_id for t in await store.search_tickets(TicketQuery(**query))]  # type: ignore[arg-type]

    assert await ids(respondent_uscc=RESPONDENT_USCC) == [shop.ticket_id]
    assert await ids(respondent_name="凯里市某超市有限公司") == [shop.ticket_id]
    assert await ids(adapter_id="prov-12345-soap") == [other.ticket_id]
    assert await ids(status="RECEIVED") == [other.ticket_id, shop.ticket_id]  # newest first
    assert await ids(status="RECEIVED", limit=1) == [other.ticket_id]
    assert await ids(source_ticket_no="GZ-A", status="RECEIVED") == [shop.ticket_id]
    assert await ids(since=before) == [other.ticket_id, shop.ticket_id]
    assert await ids(until=before) == []
    assert await ids(status="CLOSED") == []


async def test_raw_payload_is_kept_byte_for_byte(store: Store) -> None:
    gbk = "<infoid>GZ001</infoid><content>商品质量问题</content>".encode("gbk")
    ticket = make_ticket()
    await store.intake(ticket, gbk, "text/xml; charset=GBK", [])
    assert await store.get_raw_payload(ticket.ticket_id) == (gbk, "text/xml; charset=GBK")
    assert await store.get_raw_payload("01J0000000000000000000NONE") is None


# -- quarantine --------------------------------------------------------------------------------------

async def test_quarantine_round_trip(store: Store) -> None:
    errors = [FieldError(field="complainant.phone", rule="invalid_phone", message="the phone number has too few digits",
                         value="138001", source_path="$.contactPhone")]
    qid = await store.quarantine("city-12345-rest", b'{"contactPhone":"138001"}', "application/json", errors)
    other = await store.quarantine("prov-12345-soap", b"<x/>", "text/xml", [])

    got = await store.get_quarantined(qid)
    assert got is not None
    assert (got.adapter_id, got.body, got.content_type, got.errors) == (
        "city-12345-rest", b'{"contactPhone":"138001"}', "application/json", tuple(errors))
    assert got.resolved_ticket_id is None
    assert [q.quarantine_id for q in await store.list_quarantined()] == [other, qid]
    assert [q.quarantine_id for q in await store.list_quarantined("city-12345-rest")] == [qid]

    await store.resolve_quarantined(qid, "01J0RESOLVEDTICKET00000000")
    resolved = await store.get_quarantined(qid)
    assert resolved is not None and resolved.resolved_ticket_id == "01J0RESOLVEDTICKET00000000"
    assert await store.get_quarantined("nope") is None


# -- claiming ----------------------------------------------------------------------------------------

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
    [c] = await store.claim("national", "worker-1", 45)

    assert (c.ticket_id, c.destination, c.kind, c.body, c.content_type) == (
        ticket.ticket_id, "national", DeliveryKind.FORWARD, b'{"n":1}', "application/json")
    assert c.headers == {"x-source": "city-12345"}
    assert c.idempotency_key == ticket.idempotency_key
    assert c.attempts == 0
    assert timedelta(seconds=40) < c.lease_until - datetime.now(UTC) <= timedelta(seconds=45)
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
    await store.enqueue("t1", "k1", [national(), national(), national(destination="credit")])
    await asyncio.sleep(0.05)
    [c] = await store.claim("national", "w", 30)
    await store.settle_delivered(c, attempt(c))

    stats = await store.lane_stats()
    assert stats["national"]["pending"] == 1 and stats["national"]["delivered"] == 1
    assert stats["national"]["dead"] == 0 and stats["credit"]["pending"] == 1
    assert 0.04 < stats["national"]["oldest_waiting_age_s"] < 30
    await _deliver_all(store)
    assert (await store.lane_stats())["national"]["oldest_waiting_age_s"] == 0.0


# -- cursors, locks, nonces --------------------------------------------------------------------------

async def test_cursor_round_trip(store: Store) -> None:
    assert await store.get_cursor("prov-12345-soap") is None
    await store.set_cursor("prov-12345-soap", "2024-06-11T09:30:00+08:00|GZ001")
    await store.set_cursor("prov-12345-soap", "2024-06-11T10:00:00+08:00|GZ002")
    assert await store.get_cursor("prov-12345-soap") == "2024-06-11T10:00:00+08:00|GZ002"


async def test_a_lock_has_one_owner_until_released_or_expired(store: Store) -> None:
    assert await store.try_lock("poll:prov-12345-soap", "gateway-a", 1.0)
    assert not await store.try_lock("poll:prov-12345-soap", "gateway-b", 1.0)
    assert await store.try_lock("poll:prov-12345-soap", "gateway-a", 1.0)  # renewal
    await store.release_lock("poll:prov-12345-soap", "gateway-b")  # not the owner: no effect
    assert not await store.try_lock("poll:prov-12345-soap", "gateway-b", 1.0)

    await asyncio.sleep(1.1)
    assert await store.try_lock("poll:prov-12345-soap", "gateway-b", 5)
    await store.release_lock("poll:prov-12345-soap", "gateway-b")
    assert await store.try_lock("poll:prov-12345-soap", "gateway-a", 5)


async def test_a_nonce_is_new_once_per_scope_until_its_ttl_ends(store: Store) -> None:
    assert await store.remember_nonce("national-status", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1.0)
    assert not await store.remember_nonce("national-status", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1.0)
    assert await store.remember_nonce("city-12345-rest", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1.0)
    await asyncio.sleep(1.1)
    assert await store.remember_nonce("national-status", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1.0)


# -- life cycle --------------------------------------------------------------------------------------

async def test_health_reports_reachable_and_whether_data_persists(store: Store) -> None:
    health = await store.health()
    assert health["reachable"] is True
    assert isinstance(health["persistent"], bool)
    assert isinstance(health["warnings"], list)


async def test_data_survives_closing_and_reopening(open_store: Callable[[], Awaitable[Store]]) -> None:
    first = await open_store()
    ticket = make_ticket()
    result = await first.intake(ticket, RAW, "application/json", [national()])
    await first.close()
    second = await open_store()
    assert await second.get_ticket(ticket.ticket_id) == ticket
    [c] = await second.claim("national", "w", 30)
    assert c.delivery_id == result.delivery_ids[0]


# -- operations: audit log, per-minute counts, intake totals -------------------------------------------

def _audit(action: str, *tickets: str, actor: str = "ops-zhang", at: datetime | None = None,
           **detail: object) -> AuditEntry:
    return AuditEntry(actor=actor, role="operator", action=action, at=at or datetime.now(UTC),
                      ticket_ids=tuple(tickets), detail=detail)


async def test_audit_entries_are_kept_and_listed_newest_first(store: Store) -> None:
    first = await store.append_audit(_audit("replay", "T1", delivery_ids=["D1"], destination="national"))
    second = await store.append_audit(_audit("quarantine.remap", "T2", quarantine_id="Q1"))

    listed = await store.list_audit(AuditQuery())
    assert [e.entry_id for e in listed] == [second, first]
    newest = listed[0]
    assert (newest.actor, newest.role, newest.action, newest.outcome) == ("ops-zhang", "operator",
                                                                          "quarantine.remap", "ok")
    assert newest.ticket_ids == ("T2",)
    assert newest.detail == {"quarantine_id": "Q1"}
    assert listed[1].detail == {"delivery_ids": ["D1"], "destination": "national"}


async def test_audit_entries_are_found_by_ticket_actor_action_and_time(store: Store) -> None:
    early = datetime.now(UTC) - timedelta(minutes=1)
    await store.append_audit(_audit("replay", "T1", "T2", at=early))
    await store.append_audit(_audit("replay.dry_run", "T2", actor="ops-li"))
    await store.append_audit(_audit("config.reload", actor="ops-admin"))

    assert [e.action for e in await store.list_audit(AuditQuery(ticket_id="T2"))] == ["replay.dry_run", "replay"]
    assert [e.action for e in await store.list_audit(AuditQuery(ticket_id="T1"))] == ["replay"]
    assert await store.list_audit(AuditQuery(ticket_id="T9")) == []
    assert [e.actor for e in await store.list_audit(AuditQuery(actor="ops-li"))] == ["ops-li"]
    assert [e.action for e in await store.list_audit(AuditQuery(action="config.reload"))] == ["config.reload"]
    recent = await store.list_audit(AuditQuery(since=early + timedelta(seconds=1)))
    assert {e.action for e in recent} == {"replay.dry_run", "config.reload"}
    assert [e.action for e in await store.list_audit(AuditQuery(until=early + timedelta(seconds=1)))] == ["replay"]
    assert len(await store.list_audit(AuditQuery(limit=2))) == 2


async def test_minute_counts_add_up_per_minute_and_series(store: Store) -> None:
    minute = datetime.now(UTC).replace(second=0, microsecond=0)
    before = minute - timedelta(minutes=3)
    await store.add_counts({minute + timedelta(seconds=10): {"intake": 2, "delivered": 1}, before: {"intake": 1}})
    await store.add_counts({minute + timedelta(seconds=50): {"intake": 3, "failed": 0}})

    counts = await store.read_counts(minute - timedelta(minutes=10))
    assert counts == {before: {"intake": 1}, minute: {"intake": 5, "delivered": 1}}
    assert await store.read_counts(minute) == {minute: {"intake": 5, "delivered": 1}}
    assert await store.read_counts(before, until=minute) == {before: {"intake": 1}}


async def test_intake_stats_count_tickets_and_open_quarantine_per_adapter(store: Store) -> None:
    await store.intake(make_ticket("A-1"), RAW, "application/json", [])
    await store.intake(make_ticket("A-2"), RAW, "application/json", [])
    await store.intake(make_ticket("B-1", adapter_id="legacy-registration"), RAW, "application/json", [])
    error = FieldError(field="complainant.phone", rule="phone", message="not a phone number")
    q1 = await store.quarantine("city-12345-rest", RAW, "application/json", [error])
    await store.quarantine("city-12345-rest", RAW, "application/json", [error])
    await store.resolve_quarantined(q1, "01J0000000000000000000000A")

    stats = await store.intake_stats(["city-12345-rest", "legacy-registration", "emergency-command"])
    assert stats == {
        "city-12345-rest": {"tickets": 2, "quarantined": 2, "quarantine_open": 1},
        "legacy-registration": {"tickets": 1, "quarantined": 0, "quarantine_open": 0},
        "emergency-command": {"tickets": 0, "quarantined": 0, "quarantine_open": 0},
    }
