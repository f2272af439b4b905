"""A partner's number belongs to one ticket, on every backend: intake takes (source system, number) with the ticket
in one atomic step, so another version of the matter — come later or racing through another connection — stores
nothing and is told which ticket holds the number."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from contracts.ticket import Ticket
from gateway.store import DeliveryFilter, SourceNumber, Store, TicketQuery
from tests.store.conformance.conformance_support import RAW
from tests.store.store_support import make_ticket, national

NUMBER = "GZ-12345-20240611-0001"  # make_ticket's


async def test_another_version_of_a_stored_number_is_not_stored_and_names_the_holder(store: Store) -> None:
    first = make_ticket(version="1")
    await store.intake(first, RAW, "application/json", [national()])
    second = make_ticket(version="2")

    result = await store.intake(second, RAW, "application/json", [national()])

    assert (result.created, result.number_taken, result.ticket_id) == (False, True, first.ticket_id)
    assert result.delivery_ids == ()
    assert await store.get_ticket(second.ticket_id) is None
    assert len(await store.list_deliveries(DeliveryFilter(destination="national"))) == 1
    assert await store.count_tickets(TicketQuery(source_ticket_no=NUMBER)) == 1


async def test_the_same_version_again_is_a_repeat_not_a_taken_number(store: Store) -> None:
    first = await store.intake(make_ticket(version="2"), RAW, "application/json", [national()])
    again = await store.intake(make_ticket(version="2"), RAW, "application/json", [national()])
    assert (again.created, again.number_taken, again.ticket_id) == (False, False, first.ticket_id)


async def test_the_holder_of_a_number_is_found_by_one_keyed_read(store: Store) -> None:
    ticket = make_ticket()
    await store.intake(ticket, RAW, "application/json", [])

    assert await store.find_ticket_id(source=SourceNumber("city-12345", NUMBER)) == ticket.ticket_id
    assert await store.find_ticket_id(source=SourceNumber("city-12345", "GZ-12345-20240611-0002")) is None
    assert await store.find_ticket_id(source=SourceNumber("prov-12345", NUMBER)) is None


async def test_one_number_from_two_source_systems_is_two_tickets(store: Store) -> None:
    city = make_ticket()
    data = make_ticket().model_dump()
    data["source"]["source_system"] = "prov-12345"
    del data["ticket_id"], data["idempotency_key"]
    other = Ticket.model_validate(data)

    assert (await store.intake(city, RAW, "application/json", [])).created
    assert (await store.intake(other, RAW, "application/json", [])).created
    assert await store.find_ticket_id(source=SourceNumber("prov-12345", NUMBER)) == other.ticket_id


async def test_versions_racing_through_two_connections_make_one_ticket_every_time(
        open_store: Callable[[], Awaitable[Store]]) -> None:
    """Two gateway processes each take a different version of one number at the same moment, many times over:
    each number ends as exactly one ticket with one forward, and every loser names it."""
    one, two = await open_store(), await open_store()
    rounds = 40
    for n in range(rounds):
        number = f"GZ-12345-20240611-{n:04d}"
        versions = [make_ticket(number, version=v) for v in ("1", "2", "3", "2")]
        results = await asyncio.gather(*(
            (one if i % 2 else two).intake(t, RAW, "application/json", [national()]) for i, t in enumerate(versions)))
        created = [r for r in results if r.created]
        assert len(created) == 1, (number, results)
        assert {r.ticket_id for r in results} == {created[0].ticket_id}, (number, results)
        winner = await one.get_ticket(created[0].ticket_id)
        assert winner is not None
        # a loser of another version is told the number is taken; one of the winner's version is a repeat
        assert [r.number_taken for r in results] == [
            not r.created and t.source.source_version != winner.source.source_version
            for t, r in zip(versions, results, strict=True)], (number, results)
        assert await one.find_ticket_id(source=SourceNumber("city-12345", number)) == created[0].ticket_id
    assert await two.count_tickets(TicketQuery()) == rounds
    assert len(await one.list_deliveries(DeliveryFilter(destination="national", limit=1000))) == rounds
