"""Deadlines as stored state: tickets found and counted by the due day of their running time limits, and the
on-time counts of ended limits by day, handling organisation and kind, on every store alike."""

from __future__ import annotations

import asyncio
from datetime import date

from contracts.ticket import Deadline, DeadlineOutcome, Ticket
from gateway.store import OnTimeCount, Store, TicketQuery
from tests.store.conformance.conformance_support import RAW
from tests.store.store_support import make_ticket

KAILI = ("522601", "凯里市市场监督管理局")
DANZHAI = ("522636", "丹寨县市场监督管理局")


def limit(kind: str, due: date, outcome: DeadlineOutcome | None = None, ended_on: date | None = None) -> Deadline:
    return Deadline.model_validate({
        "kind": kind, "starts_on": date(2024, 6, 11), "due_on": due, "working_days": 7, "rule_set": "order20-2022",
        "basis": "7 working days from receipt 2024-06-11 (Art. 14)", "outcome": outcome, "ended_on": ended_on,
        "ended_by": None if outcome is None else "ACCEPTED"})


def handled(no: str, *limits: Deadline, org: tuple[str, str] = KAILI, adapter_id: str = "city-12345-rest") -> Ticket:
    ticket = make_ticket(no, adapter_id=adapter_id)
    ticket.routing.handler_org_code, ticket.routing.handler_org_name = org
    ticket.routing.deadlines = list(limits)
    return ticket


async def ids(store: Store, **query: object) -> list[str]:
    return [t.ticket_id for t in await store.search_tickets(TicketQuery(**query))]  # type: ignore[arg-type]


async def test_tickets_are_found_and_counted_by_the_due_day_of_their_running_limits(store: Store) -> None:
    soon = handled("KL-DUE-1", limit("acceptance", date(2024, 6, 20)))
    later = handled("KL-DUE-2", limit("acceptance", date(2024, 6, 13), "met", date(2024, 6, 12)),
                    limit("mediation", date(2024, 8, 14)), adapter_id="prov-12345-soap")
    ended = handled("KL-DUE-3", limit("acceptance", date(2024, 6, 18), "missed", date(2024, 6, 25)))
    enquiry = handled("KL-DUE-4")
    for ticket in (soon, later, ended, enquiry):
        await store.intake(ticket, RAW, "application/json", [])

    assert await ids(store, due_before=date(2024, 6, 21)) == [soon.ticket_id]
    assert await ids(store, due_from=date(2024, 6, 21), due_before=date(2024, 9, 1)) == [later.ticket_id]
    assert await ids(store, due_from=date(2024, 6, 20), due_before=date(2024, 6, 21)) == [soon.ticket_id]
    assert await ids(store, order="due") == [soon.ticket_id, later.ticket_id]
    assert await ids(store, order="due", limit=1) == [soon.ticket_id]
    assert await ids(store, due_before=date(2024, 9, 1), adapter_id="prov-12345-soap") == [later.ticket_id]
    assert await ids(store, due_before=date(2024, 6, 1)) == []

    assert await store.count_tickets(TicketQuery(due_before=date(2024, 9, 1))) == 2
    assert await store.count_tickets(TicketQuery(due_from=date(2024, 6, 21))) == 1
    assert await store.count_tickets(TicketQuery(due_before=date(2024, 9, 1), adapter_id="city-12345-rest")) == 1
    assert await store.count_tickets(TicketQuery()) == 4
    assert await store.count_tickets(TicketQuery(adapter_id="city-12345-rest")) == 3


async def test_by_due_day_the_newest_comes_first_within_a_day_and_the_limit_may_cut_a_day(store: Store) -> None:
    earliest = handled("KL-TIE-0", limit("acceptance", date(2024, 6, 18)))
    same_day = [handled(f"KL-TIE-{i}", limit("acceptance", date(2024, 6, 20))) for i in (1, 2, 3)]
    for ticket in (earliest, *same_day):
        await store.intake(ticket, RAW, "application/json", [])
        await asyncio.sleep(0.01)
    first, second, third = (t.ticket_id for t in same_day)
    assert await ids(store, order="due", limit=3) == [earliest.ticket_id, third, second]
    assert await ids(store, order="due", due_before=date(2024, 6, 21), limit=10) == [
        earliest.ticket_id, third, second, first]


async def test_a_saved_ticket_whose_limit_ended_leaves_the_due_index_and_an_extended_one_moves(store: Store) -> None:
    ticket = handled("KL-DUE-5", limit("acceptance", date(2024, 6, 20)))
    await store.intake(ticket, RAW, "application/json", [])
    ticket.routing.deadlines = [limit("acceptance", date(2024, 7, 2))]
    await store.save_ticket(ticket, [])
    assert await ids(store, due_before=date(2024, 6, 21)) == []
    assert await ids(store, due_from=date(2024, 7, 2), due_before=date(2024, 7, 3)) == [ticket.ticket_id]

    ticket.routing.deadlines = [limit("acceptance", date(2024, 7, 2), "met", date(2024, 6, 28))]
    await store.save_ticket(ticket, [])
    assert await ids(store, order="due") == []
    assert await store.count_tickets(TicketQuery(due_before=date(2030, 1, 1))) == 0


async def test_on_time_counts_group_ended_limits_by_organisation_and_kind_within_the_days(store: Store) -> None:
    kaili = handled("KL-OT-1", limit("acceptance", date(2024, 6, 20), "met", date(2024, 6, 13)),
                    limit("mediation", date(2024, 8, 14), "missed", date(2024, 8, 20)))
    kaili_2 = handled("KL-OT-2", limit("acceptance", date(2024, 6, 20), "missed", date(2024, 6, 21)))
    danzhai = handled("DZ-OT-1", limit("clue_check", date(2024, 7, 2), "met", date(2024, 6, 14)), org=DANZHAI)
    running = handled("DZ-OT-2", limit("clue_check", date(2024, 7, 2)), org=DANZHAI)
    for ticket in (kaili, kaili_2, danzhai, running):
        await store.intake(ticket, RAW, "application/json", [])

    assert await store.on_time_counts(date(2024, 6, 1), date(2024, 8, 31)) == [
        OnTimeCount("522601", "凯里市市场监督管理局", "acceptance", met=1, missed=1),
        OnTimeCount("522601", "凯里市市场监督管理局", "mediation", met=0, missed=1),
        OnTimeCount("522636", "丹寨县市场监督管理局", "clue_check", met=1, missed=0),
    ]
    assert await store.on_time_counts(date(2024, 6, 14), date(2024, 6, 14)) == [
        OnTimeCount("522636", "丹寨县市场监督管理局", "clue_check", met=1, missed=0)]
    assert await store.on_time_counts(date(2024, 9, 1), date(2024, 9, 30)) == []


async def test_a_ticket_saved_again_is_counted_once_as_it_stands_now(store: Store) -> None:
    ticket = handled("KL-OT-3", limit("acceptance", date(2024, 6, 20)))
    await store.intake(ticket, RAW, "application/json", [])
    ticket.routing.deadlines = [limit("acceptance", date(2024, 6, 20), "met", date(2024, 6, 13))]
    await store.save_ticket(ticket, [])
    await store.save_ticket(ticket, [])
    june = (date(2024, 6, 1), date(2024, 6, 30))
    assert await store.on_time_counts(*june) == [OnTimeCount(*KAILI, "acceptance", met=1, missed=0)]

    # A late event moved the end: the count follows (the old day no longer counts it).
    ticket.routing.deadlines = [limit("acceptance", date(2024, 6, 20), "missed", date(2024, 7, 1))]
    await store.save_ticket(ticket, [])
    assert await store.on_time_counts(*june) == []
    assert await store.on_time_counts(date(2024, 7, 1), date(2024, 7, 1)) == [
        OnTimeCount(*KAILI, "acceptance", met=0, missed=1)]
