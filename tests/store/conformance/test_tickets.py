"""The ticket role (TicketStore) on every backend: intake, idempotency, lookup, optimistic save, search, raw bodies."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest

from contracts.delivery import DeliveryKind, DeliveryState, OutboxEntry
from contracts.ticket import JurisdictionDecision
from gateway.store import ConcurrentUpdate, DeliveryFilter, Store, TicketQuery, UnknownTicket
from tests.store.conformance.conformance_support import RAW
from tests.store.store_support import RESPONDENT_USCC, make_ticket, national

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
    ids = await store.save_ticket(ticket, [callback], expected_revision=0)

    stored = await store.get_ticket(ticket.ticket_id)
    assert stored is not None and stored.registration.title == "食品标签咨询"
    assert len(ids) == 1
    receipt = await store.get_delivery(ids[0])
    assert receipt is not None
    assert (receipt.kind, receipt.idempotency_key) == (DeliveryKind.CALLBACK, "status-event-0")


async def test_save_ticket_with_a_stale_revision_raises_concurrent_update(store: Store) -> None:
    ticket = make_ticket()
    await store.intake(ticket, RAW, "application/json", [])
    ticket.lifecycle.last_sequence = 0
    await store.save_ticket(ticket, [], expected_revision=0)

    ticket.lifecycle.last_sequence = 1
    with pytest.raises(ConcurrentUpdate):
        await store.save_ticket(ticket, [national()], expected_revision=0)
    stored = await store.get_ticket(ticket.ticket_id)
    assert stored is not None and stored.lifecycle.last_sequence == 0
    assert await store.list_deliveries(DeliveryFilter(ticket_id=ticket.ticket_id)) == []


async def test_each_save_counts_a_revision_so_two_writers_of_one_read_cannot_both_save(store: Store) -> None:
    """Two writers read the ticket at revision 0 and change what no status sequence tracks (a national number, a
    title): the first save wins, the second is refused although the status sequence never moved."""
    ticket = make_ticket()
    await store.intake(ticket, RAW, "application/json", [])
    first = ticket.model_copy(update={"national_registration_no": "1231552260120261206000001"})
    second = ticket.model_copy(update={"registration": ticket.registration.model_copy(update={"title": "改过的标题"})})

    await store.save_ticket(first, [], expected_revision=0)
    with pytest.raises(ConcurrentUpdate):
        await store.save_ticket(second, [national()], expected_revision=0)

    stored = await store.get_ticket(ticket.ticket_id)
    assert stored is not None
    assert stored.lifecycle.revision == 1
    assert stored.national_registration_no == "1231552260120261206000001"
    assert stored.registration.title == ticket.registration.title
    await store.save_ticket(stored, [], expected_revision=1)
    again = await store.get_ticket(ticket.ticket_id)
    assert again is not None and again.lifecycle.revision == 2


async def test_tickets_held_for_review_are_found_by_index_until_settled(store: Store) -> None:
    """The operators' review list is an indexed search: held tickets are found however many others arrived
    since, and a settled one drops out."""
    decided = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
    held = [make_ticket(f"GZ-HELD-{i}") for i in range(2)]
    for ticket in held:
        ticket.routing.jurisdiction = JurisdictionDecision(outcome="review", rule_id="review.medical-beauty",
                                                           reason="医美：需人工判断", decided_at=decided)
        await store.intake(ticket, RAW, "application/json", [])
    accepted = make_ticket("GZ-ACCEPTED")
    accepted.routing.jurisdiction = JurisdictionDecision(outcome="accept", rule_id="accept.food", decided_at=decided)
    await store.intake(accepted, RAW, "application/json", [])
    for i in range(5):
        await store.intake(make_ticket(f"GZ-LATER-{i}"), RAW, "application/json", [])

    found = await store.search_tickets(TicketQuery(held="review"))
    assert sorted(t.ticket_id for t in found) == sorted(t.ticket_id for t in held)

    settled = held[0].model_copy(deep=True)
    assert settled.routing.jurisdiction is not None
    settled.routing.jurisdiction = settled.routing.jurisdiction.model_copy(update={"outcome": "accept"})
    await store.save_ticket(settled, [], expected_revision=0)
    assert [t.ticket_id for t in await store.search_tickets(TicketQuery(held="review"))] == [held[1].ticket_id]


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


# -- raw payloads of later versions --------------------------------------------------------------------

async def test_a_later_versions_raw_payload_is_kept_under_its_key_beside_the_first(store: Store) -> None:
    ticket = make_ticket()
    await store.intake(ticket, RAW, "application/json", [])
    second = "补充材料：购物小票".encode("gbk")
    await store.keep_raw_payload(ticket.ticket_id, "v2-key", second, "application/json; charset=GBK")

    assert await store.get_raw_payload(ticket.ticket_id, "v2-key") == (second, "application/json; charset=GBK")
    assert await store.get_raw_payload(ticket.ticket_id) == (RAW, "application/json")
    assert await store.get_raw_payload(ticket.ticket_id, "v3-key") is None


async def test_keeping_a_versions_raw_payload_again_replaces_it(store: Store) -> None:
    ticket = make_ticket()
    await store.intake(ticket, RAW, "application/json", [])
    await store.keep_raw_payload(ticket.ticket_id, "v2-key", b"first try", "text/plain")
    await store.keep_raw_payload(ticket.ticket_id, "v2-key", b"second try", "application/json")

    assert await store.get_raw_payload(ticket.ticket_id, "v2-key") == (b"second try", "application/json")


async def test_a_versions_raw_payload_needs_a_stored_ticket(store: Store) -> None:
    with pytest.raises(UnknownTicket):
        await store.keep_raw_payload("01J0000000000000000000NONE", "v2-key", RAW, "application/json")
    assert await store.get_raw_payload("01J0000000000000000000NONE", "v2-key") is None
