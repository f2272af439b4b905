"""The link index of the ticket role on every backend: a ticket stored with its marks is found by any of them within
a time range of receipt, newest received first, and by nothing else."""

from __future__ import annotations

from datetime import datetime, timedelta

from contracts.ticket import Ticket, TicketLink
from gateway.store import DeliveryFilter, IntakeResult, LinkCandidate, LinkQuery, Relinked, Store
from gateway.store.base import Relink
from tests.store.conformance.conformance_support import RAW
from tests.store.store_support import RESPONDENT_USCC, make_ticket, national

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


async def test_the_newest_within_the_limit_are_found_whichever_mark_holds_them(store: Store) -> None:
    # Each mark is read for its own newest few: the answer is still the newest of all, across marks, in order.
    by_phone = [received_later(make_ticket(f"GZ-P{i}"), day) for i, day in enumerate((1, 2, 5, 8, 9))]
    by_id = [received_later(make_ticket(f"GZ-I{i}"), day) for i, day in enumerate((0, 3, 4, 6, 7))]
    for ticket in by_phone:
        await store.intake(ticket, RAW, "application/json", [], link_marks=[PHONE_MARK])
    for ticket in by_id:
        await store.intake(ticket, RAW, "application/json", [], link_marks=[ID_MARK])

    since, until = around(by_id[0])
    found = await store.find_link_candidates(LinkQuery((PHONE_MARK, ID_MARK), since, until, limit=5))

    # received on days 9, 8, 7, 6, 5
    assert [t.ticket_id for t in found] == [by_phone[4].ticket_id, by_phone[3].ticket_id, by_id[4].ticket_id,
                                            by_id[3].ticket_id, by_phone[2].ticket_id]


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


def link_to(ticket: Ticket, score: float = 0.9) -> TicketLink:
    """The link an earlier ticket shows to `ticket`, a later duplicate."""
    return TicketLink(ticket_id=ticket.ticket_id, adapter_id=ticket.source.adapter_id,
                      source_ticket_no=ticket.source.source_ticket_no, received_at=ticket.source.source_received_at,
                      score=score, similarity=score, days_apart=1.0, reasons=["同一投诉人（联系电话相同）"],
                      linked_at=ticket.source.source_received_at)


async def stored(store: Store, ticket_id: str) -> Ticket:
    found = await store.get_ticket(ticket_id)
    assert found is not None
    return found


async def test_links_back_are_shown_on_several_tickets_in_one_write(store: Store) -> None:
    earlier = [make_ticket(f"GZ-{i}") for i in range(3)]
    for ticket in earlier:
        await store.intake(ticket, RAW, "application/json", [])
    new = make_ticket("GZ-9", adapter_id="legacy-12365")

    changed = await store.add_links_back({t.ticket_id: link_to(new) for t in earlier[:2]}, most=10)

    assert sorted(changed) == sorted(t.ticket_id for t in earlier[:2])
    for ticket in earlier[:2]:
        now = await stored(store, ticket.ticket_id)
        assert [(k.ticket_id, k.adapter_id, k.score) for k in now.links] == [(new.ticket_id, "legacy-12365", 0.9)]
        assert now.lifecycle.revision == ticket.lifecycle.revision + 1
    untouched = await stored(store, earlier[2].ticket_id)
    assert untouched.links == [] and untouched.lifecycle.revision == earlier[2].lifecycle.revision


async def test_a_link_back_shown_already_or_beyond_the_cap_is_not_added(store: Store) -> None:
    shown, full = make_ticket("GZ-1"), make_ticket("GZ-2")
    new, other = make_ticket("GZ-9"), make_ticket("GZ-8")
    await store.intake(shown.model_copy(update={"links": [link_to(new, 0.8)]}), RAW, "application/json", [])
    await store.intake(full.model_copy(update={"links": [link_to(other)]}), RAW, "application/json", [])

    changed = await store.add_links_back({shown.ticket_id: link_to(new), full.ticket_id: link_to(new)}, most=1)

    assert changed == []
    assert [k.score for k in (await stored(store, shown.ticket_id)).links] == [0.8]  # the link it had, kept
    assert [k.ticket_id for k in (await stored(store, full.ticket_id)).links] == [other.ticket_id]
    assert (await stored(store, full.ticket_id)).lifecycle.revision == full.lifecycle.revision


async def test_a_link_back_to_a_ticket_never_stored_is_left_out(store: Store) -> None:
    ticket = make_ticket("GZ-1")
    await store.intake(ticket, RAW, "application/json", [])
    new = make_ticket("GZ-9")

    changed = await store.add_links_back({ticket.ticket_id: link_to(new), make_ticket("GZ-7").ticket_id: link_to(new)},
                                         most=10)

    assert changed == [ticket.ticket_id]
    assert [k.ticket_id for k in (await stored(store, ticket.ticket_id)).links] == [new.ticket_id]


async def test_a_link_back_keeps_what_another_writer_saved_before_it(store: Store) -> None:
    ticket = make_ticket("GZ-1")
    await store.intake(ticket, RAW, "application/json", [])
    await store.save_ticket(ticket.model_copy(update={"national_registration_no": "12315-2024-000001"}), [],
                            expected_revision=ticket.lifecycle.revision)
    new = make_ticket("GZ-9")

    await store.add_links_back({ticket.ticket_id: link_to(new)}, most=10)

    now = await stored(store, ticket.ticket_id)
    assert now.national_registration_no == "12315-2024-000001"  # the other writer's change stays
    assert [k.ticket_id for k in now.links] == [new.ticket_id]
    assert now.lifecycle.revision == ticket.lifecycle.revision + 2


async def test_intake_unless_candidates_stores_a_ticket_no_other_shares_a_mark_with(store: Store) -> None:
    other = make_ticket("GZ-1")
    await store.intake(other, RAW, "application/json", [], link_marks=[ID_MARK])
    ticket = make_ticket("GZ-2")
    since, until = around(ticket)

    result = await store.intake_unless_candidates(ticket, RAW, "application/json", [national()],
                                                  LinkQuery((PHONE_MARK,), since, until), link_marks=[PHONE_MARK])

    assert isinstance(result, IntakeResult)
    assert (result.ticket_id, result.created, len(result.delivery_ids)) == (ticket.ticket_id, True, 1)
    stored = await store.get_ticket(ticket.ticket_id)
    assert stored is not None and stored.source.source_ticket_no == "GZ-2"
    assert await store.find_ticket_id(idempotency_key=ticket.idempotency_key) == ticket.ticket_id
    (delivery,) = await store.list_deliveries(DeliveryFilter(ticket_id=ticket.ticket_id))
    assert delivery.destination == "national"
    # stored under its marks, as intake stores it
    assert [t.ticket_id for t in await store.find_link_candidates(LinkQuery((PHONE_MARK,), since, until))] == [
        ticket.ticket_id]


async def test_intake_unless_candidates_stores_nothing_and_answers_the_candidates_when_there_are(
        store: Store) -> None:
    first = make_ticket("GZ-1")
    second = received_later(make_ticket("GZ-2"), 1)
    await store.intake(first, RAW, "application/json", [], link_marks=[PHONE_MARK])
    await store.intake(second, RAW, "application/json", [], link_marks=[ID_MARK])
    ticket = received_later(make_ticket("GZ-3"), 2)
    since, until = around(ticket)

    result = await store.intake_unless_candidates(ticket, RAW, "application/json", [national()],
                                                  LinkQuery((PHONE_MARK, ID_MARK), since, until),
                                                  link_marks=[PHONE_MARK, ID_MARK])

    assert isinstance(result, list)
    assert [c.ticket_id for c in result] == [second.ticket_id, first.ticket_id]  # newest received first
    assert result[1].source.source_ticket_no == "GZ-1"
    assert await store.get_ticket(ticket.ticket_id) is None
    assert await store.find_ticket_id(idempotency_key=ticket.idempotency_key) is None
    assert await store.list_deliveries(DeliveryFilter(ticket_id=ticket.ticket_id)) == []
    # then stored by intake, as the caller does once it has scored them
    stored = await store.intake(ticket, RAW, "application/json", [national()], link_marks=[PHONE_MARK])
    assert stored.created and stored.ticket_id == ticket.ticket_id


async def test_intake_unless_candidates_stores_no_second_ticket_for_a_known_key(store: Store) -> None:
    ticket = make_ticket("GZ-1")
    await store.intake(ticket, RAW, "application/json", [], link_marks=[PHONE_MARK])
    again = make_ticket("GZ-1")  # the same push again: same idempotency key, a new ticket id
    assert again.idempotency_key == ticket.idempotency_key and again.ticket_id != ticket.ticket_id
    since, until = around(again)

    result = await store.intake_unless_candidates(again, RAW, "application/json", [national()],
                                                  LinkQuery((PHONE_MARK,), since, until), link_marks=[PHONE_MARK])

    # Answered as intake answers a known key (Redis: its script checks the key first), or with the candidates,
    # the earlier ticket among them, after which intake answers it so: either way no second ticket.
    if isinstance(result, IntakeResult):
        assert (result.ticket_id, result.created) == (ticket.ticket_id, False)
    else:
        assert [c.ticket_id for c in result] == [ticket.ticket_id]
        repeat = await store.intake(again, RAW, "application/json", [national()], link_marks=[PHONE_MARK])
        assert (repeat.ticket_id, repeat.created) == (ticket.ticket_id, False)
    assert await store.get_ticket(again.ticket_id) is None
    assert await store.list_deliveries(DeliveryFilter(ticket_id=again.ticket_id)) == []


async def test_intake_unless_candidates_answers_another_version_with_the_holder_of_its_number(store: Store) -> None:
    first = make_ticket("GZ-1")
    await store.intake(first, RAW, "application/json", [], link_marks=[PHONE_MARK])
    update = make_ticket("GZ-1", version="2")  # the partner's next version: a new key, the same number
    assert update.idempotency_key != first.idempotency_key
    since, until = around(update)

    result = await store.intake_unless_candidates(update, RAW, "application/json", [national()],
                                                  LinkQuery((PHONE_MARK,), since, until), link_marks=[PHONE_MARK])

    # As intake answers it, or with the candidates (the first version among them), after which intake does.
    if isinstance(result, list):
        assert [c.ticket_id for c in result] == [first.ticket_id]
        result = await store.intake(update, RAW, "application/json", [national()], link_marks=[PHONE_MARK])
    assert (result.ticket_id, result.created, result.number_taken) == (first.ticket_id, False, True)
    assert await store.get_ticket(update.ticket_id) is None


def relinking(ticket: Ticket, calls: list[list[str]], *, most: int = 10) -> Relink:
    """A relink as intake's: `ticket` linked to every candidate, forwarded to the credit lane instead (so that the
    outbox stored tells which was), each candidate showing the link back; the candidates given kept in `calls`."""

    def relink(found: list[LinkCandidate]) -> Relinked:
        calls.append([c.ticket_id for c in found])
        links = [TicketLink(ticket_id=c.ticket_id, adapter_id=c.source.adapter_id,
                            source_ticket_no=c.source.source_ticket_no, received_at=c.source.source_received_at,
                            score=0.9, similarity=0.9, days_apart=2.0, reasons=["同一投诉人（联系电话相同）"],
                            linked_at=ticket.source.source_received_at) for c in found]
        linked = ticket.model_copy(update={"links": links})
        return Relinked(linked, linked.model_dump_json(), [national(destination="credit")],
                        {c.ticket_id: link_to(linked) for c in found}, most)

    return relink


async def test_intake_linking_stores_a_ticket_without_candidates_as_given_and_never_relinks(store: Store) -> None:
    ticket = make_ticket("GZ-2")
    calls: list[list[str]] = []
    since, until = around(ticket)

    done = await store.intake_linking(ticket, RAW, "application/json", [national()],
                                      LinkQuery((PHONE_MARK,), since, until), relinking(ticket, calls),
                                      link_marks=[PHONE_MARK])

    assert (done.result.ticket_id, done.result.created, done.relinked, done.shown) == (ticket.ticket_id, True, None, ())
    assert calls == []
    assert (await stored(store, ticket.ticket_id)).links == []
    (delivery,) = await store.list_deliveries(DeliveryFilter(ticket_id=ticket.ticket_id))
    assert delivery.destination == "national"


async def test_intake_linking_stores_the_relinked_ticket_and_shows_its_links_back(store: Store) -> None:
    first = make_ticket("GZ-1")
    second = received_later(make_ticket("GZ-2"), 1)
    await store.intake(first, RAW, "application/json", [], link_marks=[PHONE_MARK])
    await store.intake(second, RAW, "application/json", [], link_marks=[ID_MARK])
    ticket = received_later(make_ticket("GZ-3"), 2)
    calls: list[list[str]] = []
    since, until = around(ticket)

    done = await store.intake_linking(ticket, RAW, "application/json", [national()],
                                      LinkQuery((PHONE_MARK, ID_MARK), since, until), relinking(ticket, calls),
                                      link_marks=[PHONE_MARK, ID_MARK])

    assert calls == [[second.ticket_id, first.ticket_id]]  # the candidates, newest received first, once
    assert done.result.created and done.result.ticket_id == ticket.ticket_id
    assert done.relinked is not None and [k.ticket_id for k in done.relinked.ticket.links] == [
        second.ticket_id, first.ticket_id]
    assert sorted(done.shown or ()) == sorted([first.ticket_id, second.ticket_id])
    # stored as relinked: its links, and the relinked outbox (not the one given)
    now = await stored(store, ticket.ticket_id)
    assert [k.ticket_id for k in now.links] == [second.ticket_id, first.ticket_id]
    (delivery,) = await store.list_deliveries(DeliveryFilter(ticket_id=ticket.ticket_id))
    assert delivery.destination == "credit"
    # each earlier ticket shows the link back, one revision on
    for earlier in (first, second):
        back = await stored(store, earlier.ticket_id)
        assert [k.ticket_id for k in back.links] == [ticket.ticket_id]
        assert back.lifecycle.revision == earlier.lifecycle.revision + 1
    # and the new ticket is found by its marks like any other
    assert ticket.ticket_id in [c.ticket_id for c in await store.find_link_candidates(
        LinkQuery((ID_MARK,), since, until))]


async def test_intake_linking_shows_no_link_back_for_a_repeat(store: Store) -> None:
    first = make_ticket("GZ-1")
    await store.intake(first, RAW, "application/json", [], link_marks=[PHONE_MARK])
    other = received_later(make_ticket("GZ-5"), 1)
    await store.intake_linking(other, RAW, "application/json", [], LinkQuery((PHONE_MARK,), *around(other)),
                               relinking(other, []), link_marks=[PHONE_MARK])
    again = received_later(make_ticket("GZ-5"), 1)  # the same push again: its key is known
    shown_before = await stored(store, first.ticket_id)

    done = await store.intake_linking(again, RAW, "application/json", [national()],
                                      LinkQuery((PHONE_MARK,), *around(again)), relinking(again, []),
                                      link_marks=[PHONE_MARK])

    assert (done.result.ticket_id, done.result.created) == (other.ticket_id, False)
    assert done.shown == ()
    assert await store.get_ticket(again.ticket_id) is None
    assert (await stored(store, first.ticket_id)).lifecycle.revision == shown_before.lifecycle.revision
