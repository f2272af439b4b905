"""What only the Redis store promises: lost consumer groups, persistence warnings, namespaces and slots."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from redis.asyncio import Redis

from contracts.delivery import AttemptOutcome, DeliveryState
from contracts.ticket import Deadline
from gateway.store.base import DeliveryFilter, SourceNumber, TicketQuery
from gateway.store.phone_hash import PhoneKeyMismatch
from gateway.store.redis import GROUP, RedisKeys, RedisStore, key_slot
from tests.store.conftest import PHONE_KEY, REDIS_URL, drop_namespace
from tests.store.store_support import attempt, make_ticket, national, soon

RAW = b'{"hotlineNo":"GZ-1"}'


@pytest.fixture
async def redis_store(redis_namespace: str, redis_client: Redis) -> AsyncIterator[RedisStore]:
    store = RedisStore(REDIS_URL, PHONE_KEY, namespace=redis_namespace)
    await store.open()
    yield store
    await store.close()


async def test_a_deleted_consumer_group_is_recreated_and_claiming_continues(
        redis_store: RedisStore, redis_client: Redis, caplog: pytest.LogCaptureFixture) -> None:
    ids = [i for n, entry in enumerate([national(), national(), national(priority=0)])
           for i in await redis_store.enqueue(f"t{n}", f"k{n}", [entry])]  # three tickets: none waits for another
    [held] = await redis_store.claim("national", "w1", 30)  # the urgent one, leased
    lane = redis_store.keys.lane("national")
    for stream in lane.streams:
        await redis_client.xgroup_destroy(stream, GROUP)

    with caplog.at_level(logging.WARNING, logger="gateway.store.redis"):
        claimed = await redis_store.claim("national", "w2", 30, limit=10)
    assert "re-created" in caplog.text
    # The leased delivery is not handed out a second time while its lease lives.
    assert sorted(c.delivery_id for c in claimed) == sorted(i for i in ids if i != held.delivery_id)
    await redis_store.settle_delivered(held, attempt(held))
    for c in claimed:
        await redis_store.settle_delivered(c, attempt(c))
    assert await redis_store.claim("national", "w2", 30) == []
    assert {r.state for r in await redis_store.list_deliveries(DeliveryFilter())} == {DeliveryState.DELIVERED}


async def test_a_lane_whose_streams_vanished_entirely_does_not_crash_claim(
        redis_store: RedisStore, redis_client: Redis) -> None:
    await redis_store.enqueue("t1", "k1", [national()])
    lane = redis_store.keys.lane("national")
    await redis_client.delete(*lane.streams)  # as after a restart that kept nothing
    assert await redis_store.claim("national", "w", 30) == []
    await redis_store.enqueue("t2", "k2", [national()])
    assert len(await redis_store.claim("national", "w", 30)) == 1


async def test_open_warns_loudly_and_health_reports_when_redis_does_not_persist(
        redis_namespace: str, redis_client: Redis, caplog: pytest.LogCaptureFixture) -> None:
    appendonly = (await redis_client.config_get("appendonly"))["appendonly"]
    save = (await redis_client.config_get("save"))["save"]
    persists = appendonly == "yes" or bool(save)
    store = RedisStore(REDIS_URL, PHONE_KEY, namespace=redis_namespace)
    with caplog.at_level(logging.WARNING, logger="gateway.store.redis"):
        await store.open()
    try:
        health = await store.health()
        assert health["persistent"] is persists
        persistence = health["persistence"]
        assert isinstance(persistence, dict) and persistence["appendonly"] is (appendonly == "yes")
        if not persists:  # the Redis on these machines keeps nothing on disk
            assert "REDIS DOES NOT PERSIST" in caplog.text
            assert any("restart loses" in w for w in health["warnings"])  # type: ignore[attr-defined]
    finally:
        await store.close()


async def test_every_key_is_under_the_namespace_and_each_lane_is_one_slot(redis_namespace: str) -> None:
    db = Redis.from_url("redis://127.0.0.1:6379/13")
    url = "redis://127.0.0.1:6379/13"
    before = {k async for k in db.scan_iter(count=1000)}
    store = RedisStore(url, PHONE_KEY, namespace=redis_namespace)
    await store.open()
    try:
        ticket = make_ticket(phone="13800138000")
        result = await store.intake(ticket, RAW, "application/json",
                                    [national(), national(destination="callback:city-12345-rest", priority=0)])
        ticket.lifecycle.last_sequence = 0
        await store.save_ticket(ticket, [national()], expected_revision=0)
        for lane_name in ("national", "callback:city-12345-rest"):
            while claimed := await store.claim(lane_name, "w", 0.05):
                c = claimed[0]
                if c.delivery_id == result.delivery_ids[0]:
                    await store.settle_retry(c, attempt(c, outcome=AttemptOutcome.RETRY), soon(60))
                else:
                    await store.settle_dead(c, attempt(c, outcome=AttemptOutcome.PERMANENT, status_code=400))
        await store.quarantine("city-12345-rest", b"{}", "application/json", [])
        await store.set_cursor("prov-12345-soap", "c1")
        await store.try_lock("poll:prov-12345-soap", "me", 5)
        await store.remember_nonce("national-status", "n1", 5)
        await store.replay(DeliveryFilter(destination="callback:city-12345-rest"))
        await store.reap_expired_leases(datetime.now(UTC))

        created = {k.decode() async for k in db.scan_iter(count=1000)} - {k.decode() for k in before}
        assert created and all(k.startswith(f"{redis_namespace}:") for k in created)
        assert not any("13800138000" in k for k in created)  # the phone is indexed only by its hash
        keys = RedisKeys(redis_namespace)
        for lane_name in ("national", "callback:city-12345-rest"):
            lane = keys.lane(lane_name)
            lane_keys = [k for k in created if k.startswith(lane.tag)]
            assert len(lane_keys) >= 5
            assert {key_slot(k) for k in lane_keys} == {key_slot(lane.tag)}
        ticket_keys = [k for k in created if "{tickets}" in k]
        assert {key_slot(k) for k in ticket_keys} == {key_slot(keys.outbox)}
    finally:
        await store.close()
        leftover = [k async for k in db.scan_iter(match=f"{redis_namespace}:*", count=1000)]
        if leftover:
            await db.delete(*leftover)
        await db.aclose()


def test_key_slot_matches_redis_cluster() -> None:
    # Values from the Redis Cluster specification and CLUSTER KEYSLOT's documentation.
    assert key_slot("123456789") == 0x31C3 % 16384
    assert key_slot("somekey") == 11058
    assert key_slot("foo{hash_tag}") == 2515
    assert key_slot("{user1000}.following") == key_slot("{user1000}.followers")
    assert key_slot("foo{}{bar}") != key_slot("bar")  # an empty tag means the whole key


async def test_an_expired_lease_is_taken_over_by_a_claim_even_without_the_reaper(redis_store: RedisStore) -> None:
    await redis_store.enqueue("t1", "k1", [national()])
    [lost] = await redis_store.claim("national", "crashed", 0.1)
    await asyncio.sleep(0.2)
    [taken] = await redis_store.claim("national", "healthy", 0.1)
    assert taken.delivery_id == lost.delivery_id and taken.lease_token != lost.lease_token


async def test_a_crash_between_intake_and_relay_loses_no_delivery(
        redis_store: RedisStore, monkeypatch: pytest.MonkeyPatch) -> None:
    async def crash(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("the process died here")

    ticket = make_ticket()
    with monkeypatch.context() as patch:
        patch.setattr(redis_store, "_eval_many", crash)
        with pytest.raises(ConnectionError):
            await redis_store.intake(ticket, RAW, "application/json", [national()])
    assert (await redis_store.intake(make_ticket(), RAW, "application/json", [national()])).created is False
    assert await redis_store.claim("national", "w", 30) == []

    await redis_store.reap_expired_leases(datetime.now(UTC))  # the periodic sweep relays the outbox
    [c] = await redis_store.claim("national", "w", 30)
    assert c.ticket_id == ticket.ticket_id


async def test_intakes_at_the_same_moment_share_their_relay_round_trips(
        redis_store: RedisStore, redis_client: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    drops: list[int] = []
    xdel = redis_store.redis.xdel

    async def counted(name: Any, *ids: Any) -> int:
        drops.append(len(ids))
        return await xdel(name, *ids)

    monkeypatch.setattr(redis_store.redis, "xdel", counted)
    tickets = [make_ticket(f"GZ-12345-20240611-{n:04d}") for n in range(40)]
    results = await asyncio.gather(*(redis_store.intake(t, RAW, "application/json", [national()]) for t in tickets))

    assert all(r.created for r in results)
    assert sum(drops) == 40 and len(drops) < 40  # every entry dropped from the outbox, several per round trip
    assert await redis_client.xlen(redis_store.keys.outbox) == 0
    claimed = await redis_store.claim("national", "w", 30, limit=100)
    assert sorted(c.ticket_id for c in claimed) == sorted(t.ticket_id for t in tickets)


async def test_a_relay_that_fails_for_one_entry_moves_the_others_and_keeps_the_failed_one(
        redis_store: RedisStore, redis_client: Redis) -> None:
    good = {"did": "d-good", "lane": "national", "ticket": "t-good", "kind": "forward", "idem": "k-good",
            "body": b"{}", "ctype": "application/json", "headers": "{}", "prio": "5", "created": 1}
    bad = {**good, "did": "d-bad", "ticket": "t-bad", "idem": "k-bad"}
    # The bad ticket's delivery-order key is text where the relay script adds to a sorted set: WRONGTYPE.
    await redis_client.set(redis_store.keys.lane("national").order_prefix + "t-bad", "not a sorted set")
    ids = [await redis_client.xadd(redis_store.keys.outbox, {"x": "1"}) for _ in range(2)]

    errors = await redis_store._relay_many([(ids[0], good), (ids[1], bad)])
    assert errors[0] is None and "WRONGTYPE" in str(errors[1])
    assert [entry_id for entry_id, _ in await redis_client.xrange(redis_store.keys.outbox)] == [ids[1]]
    assert await redis_client.hget(redis_store.keys.lane("national").record("d-good"), "state") == b"pending"


async def test_an_intake_whose_relay_fails_fails_alone_among_intakes_relayed_with_it(
        redis_store: RedisStore, redis_client: Redis) -> None:
    tickets = [make_ticket(f"GZ-12345-20240611-{n:04d}") for n in range(12)]
    doomed = tickets[5]
    # Its delivery-order key is text where the relay script adds to a sorted set: its relay fails (WRONGTYPE).
    await redis_client.set(redis_store.keys.lane("national").order_prefix + doomed.ticket_id, "not a sorted set")
    results = await asyncio.gather(*(redis_store.intake(t, RAW, "application/json", [national()]) for t in tickets),
                                   return_exceptions=True)

    failed = [t for t, r in zip(tickets, results, strict=True) if isinstance(r, BaseException)]
    assert failed == [doomed] and "WRONGTYPE" in str(results[5])
    assert all(r.created for r in results if not isinstance(r, BaseException))
    assert await redis_client.xlen(redis_store.keys.outbox) == 1  # the failed entry, kept for the backlog relay


async def test_relaying_the_same_outbox_entry_twice_makes_one_delivery(
        redis_store: RedisStore, redis_client: Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    async def keep(*args: Any, **kwargs: Any) -> int:
        return 0

    with monkeypatch.context() as patch:
        patch.setattr(redis_store.redis, "xdel", keep)  # the relay ran but died before dropping the entry
        await redis_store.intake(make_ticket(), RAW, "application/json", [national()])
    assert await redis_client.xlen(redis_store.keys.outbox) == 1
    await asyncio.gather(*(redis_store.reap_expired_leases(datetime.now(UTC)) for _ in range(3)))

    assert await redis_client.xlen(redis_store.keys.outbox) == 0
    assert len(await redis_store.claim("national", "w", 30, limit=10)) == 1


async def test_namespaces_do_not_see_each_other(redis_store: RedisStore) -> None:
    other_ns = f"test-store-{uuid.uuid4().hex[:12]}"
    other = RedisStore(REDIS_URL, PHONE_KEY, namespace=other_ns)
    await other.open()
    try:
        await redis_store.enqueue("t1", "k1", [national()])
        assert await other.claim("national", "w", 30) == []
        assert (await other.lane_stats())["national"]["pending"] == 0
    finally:
        await other.close()
        await drop_namespace(other_ns)


def test_a_namespace_with_braces_is_refused() -> None:
    with pytest.raises(ValueError, match="namespace"):
        RedisKeys("hig{x}")


async def test_compaction_empties_the_body_and_goes_on_from_where_it_stopped(
        redis_store: RedisStore, redis_client: Redis) -> None:
    for n in range(4):
        await redis_store.enqueue(f"t{n}", f"k{n}", [national()])
    claims = await redis_store.claim("national", "w", 30, limit=10)
    for c in claims:
        await redis_store.settle_delivered(c, attempt(c))
    lane = redis_store.keys.lane("national")
    assert await redis_store.compact_delivered(datetime.now(UTC) + timedelta(seconds=1), limit=2) == 2
    assert await redis_client.get(lane.compacted_until) is not None  # the next call starts from here
    assert await redis_store.compact_delivered(datetime.now(UTC) + timedelta(seconds=1)) == 2
    for c in claims:
        body, compacted = await redis_client.hmget(lane.record(c.delivery_id), "body", "compacted")
        assert body == b"" and compacted is not None


async def test_a_gateway_with_another_phone_key_refuses_to_open_the_same_redis(redis_store: RedisStore) -> None:
    same = RedisStore(REDIS_URL, PHONE_KEY, namespace=redis_store.keys.namespace)
    await same.open()  # the same key: fine
    await same.close()
    other = RedisStore(REDIS_URL, b"another-phone-hash-key-32-bytes!", namespace=redis_store.keys.namespace)
    with pytest.raises(PhoneKeyMismatch, match="HIG_PHONE_HASH_KEY"):
        await other.open()
    await other.close()


async def test_tickets_stored_before_the_due_day_index_enter_it_once_on_open(
        redis_store: RedisStore, redis_client: Redis, redis_namespace: str) -> None:
    waiting, accepted = make_ticket("GZ-DUE-1"), make_ticket("GZ-DUE-2")
    for ticket, status in ((waiting, "RECEIVED"), (accepted, "ACCEPTED")):
        ticket.routing.deadlines = [Deadline(kind="acceptance", starts_on=date(2024, 6, 11), due_on=date(2024, 6, 20),
                                             working_days=7, rule_set="order20-2022", basis="7 working days")]
        ticket.lifecycle.status = status  # type: ignore[assignment]
        await redis_store.intake(ticket, RAW, "application/json", [])
    keys = redis_store.keys
    await redis_client.delete(keys.tickets_by_due, keys.due_index_filled)  # as a gateway of the version before left it

    reopened = RedisStore(REDIS_URL, PHONE_KEY, namespace=redis_namespace)
    await reopened.open()
    try:
        found = await reopened.search_tickets(TicketQuery(due_before=date(2024, 6, 21)))
        assert [t.ticket_id for t in found] == [waiting.ticket_id]
        assert await redis_client.get(keys.due_index_filled) == b"1"
    finally:
        await reopened.close()


async def test_tickets_stored_before_the_numbers_were_kept_hold_theirs_first_stored_first_on_open(
        redis_store: RedisStore, redis_client: Redis, redis_namespace: str) -> None:
    first, other = make_ticket("GZ-NO-1", version="1"), make_ticket("GZ-NO-2")
    for ticket in (first, other):
        await redis_store.intake(ticket, RAW, "application/json", [])
    keys = redis_store.keys
    await redis_client.delete(keys.source_numbers, keys.source_numbers_filled)  # as the version before left it
    second = make_ticket("GZ-NO-1", version="2")  # the duplicate a gateway of the version before made
    assert (await redis_store.intake(second, RAW, "application/json", [])).created
    await redis_client.delete(keys.source_numbers, keys.source_numbers_filled)

    reopened = RedisStore(REDIS_URL, PHONE_KEY, namespace=redis_namespace)
    await reopened.open()
    try:
        assert await reopened.find_ticket_id(source=SourceNumber("city-12345", "GZ-NO-1")) == first.ticket_id
        assert await reopened.find_ticket_id(source=SourceNumber("city-12345", "GZ-NO-2")) == other.ticket_id
        third = await reopened.intake(make_ticket("GZ-NO-1", version="3"), RAW, "application/json", [])
        assert (third.created, third.number_taken, third.ticket_id) == (False, True, first.ticket_id)
        assert await redis_client.get(keys.source_numbers_filled) == b"1"
    finally:
        await reopened.close()
