"""The link index of the ticket role on every backend: a ticket stored with its marks is found by any of them within
a time range of receipt, newest received first, and by nothing else."""

from __future__ import annotations

from datetime import datetime, timedelta

from contracts.ticket import Ticket
from gateway.store import LinkQuery, Store
from tests.store.conformance.conformance_support import RAW
from tests.store.store_support import RESPONDENT_USCC, make_ticket

PHONE_MARK = "phone:+8613985012345|uscc:91520100MA6DK2X98L"
ID_MARK = "id:522601200109098873|name:凯里市惠民生活超市@522601"


def received_later(ticket: Ticket, days: float) -> Ticket:
    source = ticket.source.model_copy(
        update={"source_received_at": ticket.source.source_received_at + timedelta(days=days)})
    return ticket.model_copy(update={"source": source})


def around(ticket: Ticket, days: float = 30) -> tuple[datetime, datetime]:
    at = ticket.source.source_received_at
    return at - timedelta(days=days), at + timedelta(days=days)


async def test_a_ticket_is_found_by_any_of_its_marks_with_what_the_link_score_reads(store: Store) -> None:
    ticket = make_ticket("GZ-1", phone="+8613985012345", respondent="凯里市惠民生活超市", uscc=RESPONDENT_USCC)
    await store.intake(ticket, RAW, "application/json", [], link_marks=[PHONE_MARK, ID_MARK])

    since, until = around(ticket)
    by_phone = await store.find_link_candidates(LinkQuery((PHONE_MARK,), since, until))
    by_id = await store.find_link_candidates(LinkQuery(("unknown|mark", ID_MARK), since, until))

    assert [t.ticket_id for t in by_phone] == [ticket.ticket_id]
    found = by_phone[0]
    # What the link score and the link read of it, as stored.
    assert (found.national_registration_no, found.source.source_system, found.source.adapter_id,
            found.source.source_ticket_no, found.source.source_received_at) == (
        ticket.national_registration_no, ticket.source.source_system, ticket.source.adapter_id,
        ticket.source.source_ticket_no, ticket.source.source_received_at)
    assert (found.registration.title, found.registration.content, found.registration.request) == (
        ticket.registration.title, ticket.registration.content, ticket.registration.request)
    assert (found.complainant.phone, found.complainant.id_number) == (ticket.complainant.phone,
                                                                      ticket.complainant.id_number)
    assert (found.respondent.name, found.respondent.uscc, found.respondent.operating_region_code,
            found.occurrence.incident_region_code) == (
        ticket.respondent.name, ticket.respondent.uscc, ticket.respondent.operating_region_code,
        ticket.occurrence.incident_region_code)
    assert [t.ticket_id for t in by_id] == [ticket.ticket_id]


async def test_other_marks_find_nothing(store: Store) -> None:
    ticket = make_ticket("GZ-1")
    await store.intake(ticket, RAW, "application/json", [], link_marks=[PHONE_MARK])
    since, until = around(ticket)

    assert await store.find_link_candidates(LinkQuery(("phone:+8613985012346|uscc:91520100MA6DK2X98L",),
                                                      since, until)) == []
    assert await store.find_link_candidates(LinkQuery((), since, until)) == []


async def test_a_ticket_stored_without_marks_is_not_indexed(store: Store) -> None:
    ticket = make_ticket("GZ-1")
    await store.intake(ticket, RAW, "application/json", [])
    since, until = around(ticket)
    assert await store.find_link_candidates(LinkQuery((PHONE_MARK,), since, until)) == []


async def test_only_tickets_received_within_the_range_are_found(store: Store) -> None:
    first = make_ticket("GZ-1")
    later = received_later(make_ticket("GZ-2"), 20)
    much_later = received_later(make_ticket("GZ-3"), 45)
    for ticket in (first, later, much_later):
        await store.intake(ticket, RAW, "application/json", [], link_marks=[PHONE_MARK])

    since, until = around(later, 24)
    found = await store.find_link_candidates(LinkQuery((PHONE_MARK,), since, until))

    assert [t.ticket_id for t in found] == [later.ticket_id, first.ticket_id]  # newest received first


async def test_a_ticket_under_two_matching_marks_is_found_once_and_the_limit_holds(store: Store) -> None:
    tickets = [received_later(make_ticket(f"GZ-{i}"), i) for i in range(5)]
    for ticket in tickets:
        await store.intake(ticket, RAW, "application/json", [], link_marks=[PHONE_MARK, ID_MARK])

    since, until = around(tickets[0])
    found = await store.find_link_candidates(LinkQuery((PHONE_MARK, ID_MARK), since, until, limit=3))

    assert [t.ticket_id for t in found] == [t.ticket_id for t in reversed(tickets)][:3]


async def test_a_repeated_push_adds_no_index_entry(store: Store) -> None:
    first = make_ticket("GZ-1")
    await store.intake(first, RAW, "application/json", [], link_marks=[PHONE_MARK])
    repeat = make_ticket("GZ-1")  # same source number and version: a repeat under a new ticket id
    result = await store.intake(repeat, RAW, "application/json", [], link_marks=[PHONE_MARK])

    assert not result.created
    since, until = around(first)
    found = await store.find_link_candidates(LinkQuery((PHONE_MARK,), since, until))
    assert [t.ticket_id for t in found] == [first.ticket_id]


async def test_a_saved_ticket_is_found_as_saved(store: Store) -> None:
    ticket = make_ticket("GZ-1")
    await store.intake(ticket, RAW, "application/json", [], link_marks=[PHONE_MARK])
    saved = ticket.model_copy(update={"national_registration_no": "12315-2024-000001"})
    await store.save_ticket(saved, [])

    since, until = around(ticket)
    (found,) = await store.find_link_candidates(LinkQuery((PHONE_MARK,), since, until))
    assert found.national_registration_no == "12315-2024-000001"
