"""The sender's echo role (EchoStore) on every backend: what the originating partner has heard of each ticket, kept by
enqueuing and settling its status callbacks, and the tickets whose partner is behind, longest first."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from contracts.delivery import AttemptOutcome, ClaimedDelivery, DeliveryKind, OutboxEntry, ReportedStatus
from contracts.ticket import Ticket
from gateway.store import Store
from tests.store.conformance.conformance_support import RAW
from tests.store.store_support import attempt, make_ticket, national, soon

LANE = "callback:city-12345-rest"


def callback(sequence: int, status: str) -> OutboxEntry:
    """A status callback as partner_writeback makes it: the partner's own codes, naming the status it reports."""
    return OutboxEntry(destination=LANE, kind=DeliveryKind.CALLBACK,
                       body=f'{{"hotlineNo":"GZ-1","handleStatus":"{sequence}"}}'.encode(),
                       idempotency_key=f"echo-test:{sequence}", reports=ReportedStatus(sequence, status))


async def stored(store: Store, no: str) -> Ticket:
    ticket = make_ticket(no)
    await store.intake(ticket, RAW, "application/json", [national()])
    return ticket


async def report(store: Store, ticket: Ticket, sequence: int, status: str) -> str:
    """Save the ticket with the callback of one status, as a status event does."""
    [delivery_id] = await store.save_ticket(ticket, [callback(sequence, status)])
    return delivery_id


async def claim_one(store: Store) -> ClaimedDelivery:
    [claim] = await store.claim(LANE, "w", 30)
    return claim


def later() -> datetime:
    return datetime.now(UTC) + timedelta(seconds=5)


async def test_a_ticket_without_status_callbacks_has_no_echo(store: Store) -> None:
    ticket = await stored(store, "GZ-ECHO-NONE")
    assert await store.get_echo(ticket.ticket_id) is None
    assert await store.list_behind(later()) == []
    assert await store.count_behind(later()) == 0


async def test_a_claimed_status_callback_names_the_status_it_reports(store: Store) -> None:
    """The lane's sender learns which status it carries (a delivered filing decision tells the reporter)."""
    ticket = await stored(store, "GZ-ECHO-CLAIM")
    await report(store, ticket, 2, "FILED")
    assert (await claim_one(store)).reports == ReportedStatus(2, "FILED")
    [forward] = await store.claim("national", "w", 30)
    assert forward.reports is None


async def test_an_enqueued_status_puts_the_partner_behind_until_its_callback_is_delivered(store: Store) -> None:
    ticket = await stored(store, "GZ-ECHO-1")
    before = datetime.now(UTC) - timedelta(seconds=1)
    delivery_id = await report(store, ticket, 1, "ACCEPTED")

    echo = await store.get_echo(ticket.ticket_id)
    assert echo is not None
    assert (echo.destination, echo.latest_sequence, echo.latest_status) == (LANE, 1, "ACCEPTED")
    assert (echo.heard_sequence, echo.heard_status, echo.heard_at) == (None, None, None)
    assert echo.behind_since is not None and before < echo.behind_since <= datetime.now(UTC)
    assert echo.waiting_delivery_id == delivery_id
    assert [e.ticket_id for e in await store.list_behind(later())] == [ticket.ticket_id]
    assert await store.count_behind(later()) == 1
    assert await store.list_behind(before) == []  # behind since after this cutoff
    assert await store.count_behind(before) == 0

    claim = await claim_one(store)
    await store.settle_delivered(claim, attempt(claim))
    heard = await store.get_echo(ticket.ticket_id)
    assert heard is not None
    assert (heard.heard_sequence, heard.heard_status) == (1, "ACCEPTED")
    assert heard.heard_at is not None and heard.behind_since is None and heard.waiting_delivery_id is None
    assert await store.list_behind(later()) == []
    assert await store.count_behind(later()) == 0


async def test_failed_and_dead_callbacks_leave_the_partner_behind_and_a_replay_clears_it(store: Store) -> None:
    ticket = await stored(store, "GZ-ECHO-DEAD")
    delivery_id = await report(store, ticket, 1, "ACCEPTED")
    claim = await claim_one(store)
    await store.settle_retry(claim, attempt(claim, outcome=AttemptOutcome.RETRY, status_code=500,
                                            error_class="http_500"), soon(0))
    claim = await claim_one(store)
    await store.settle_dead(claim, attempt(claim, outcome=AttemptOutcome.PERMANENT, status_code=400,
                                           error_class="http_400"))
    echo = await store.get_echo(ticket.ticket_id)
    assert echo is not None and echo.heard_sequence is None and echo.waiting_delivery_id == delivery_id
    [behind] = await store.list_behind(later())
    assert behind.ticket_id == ticket.ticket_id

    assert await store.replay(delivery_ids=[delivery_id]) == [delivery_id]
    claim = await claim_one(store)
    await store.settle_delivered(claim, attempt(claim))
    echo = await store.get_echo(ticket.ticket_id)
    assert echo is not None and (echo.heard_sequence, echo.behind_since) == (1, None)
    assert await store.count_behind(later()) == 0


async def test_behind_since_is_the_oldest_status_not_heard(store: Store) -> None:
    ticket = await stored(store, "GZ-ECHO-2")
    await report(store, ticket, 1, "ACCEPTED")
    first = await store.get_echo(ticket.ticket_id)
    await asyncio.sleep(0.01)
    second_id = await report(store, ticket, 2, "MEDIATING")
    await asyncio.sleep(0.01)
    await report(store, ticket, 3, "CLOSED")

    echo = await store.get_echo(ticket.ticket_id)
    assert first is not None and echo is not None
    assert (echo.latest_sequence, echo.latest_status) == (3, "CLOSED")
    assert echo.behind_since == first.behind_since  # still behind since the first status it missed

    claim = await claim_one(store)  # one ticket's callbacks go in order: ACCEPTED first
    await store.settle_delivered(claim, attempt(claim))
    echo = await store.get_echo(ticket.ticket_id)
    assert echo is not None
    assert (echo.heard_sequence, echo.heard_status) == (1, "ACCEPTED")
    assert echo.waiting_delivery_id == second_id
    assert echo.behind_since is not None and first.behind_since is not None
    assert echo.behind_since > first.behind_since  # behind since MEDIATING was enqueued

    for _ in range(2):
        claim = await claim_one(store)
        await store.settle_delivered(claim, attempt(claim))
    echo = await store.get_echo(ticket.ticket_id)
    assert echo is not None and (echo.heard_sequence, echo.heard_status, echo.behind_since) == (3, "CLOSED", None)


async def test_a_newer_status_heard_after_an_older_one_died_catches_the_partner_up(store: Store) -> None:
    ticket = await stored(store, "GZ-ECHO-SKIP")
    await report(store, ticket, 1, "ACCEPTED")
    await report(store, ticket, 2, "CLOSED")
    claim = await claim_one(store)
    await store.settle_dead(claim, attempt(claim, outcome=AttemptOutcome.PERMANENT, status_code=400,
                                           error_class="http_400"))
    claim = await claim_one(store)  # the dead one no longer holds the next back
    await store.settle_delivered(claim, attempt(claim))
    echo = await store.get_echo(ticket.ticket_id)
    assert echo is not None and (echo.heard_sequence, echo.heard_status, echo.behind_since) == (2, "CLOSED", None)


async def test_tickets_behind_are_listed_longest_behind_first_up_to_the_limit(store: Store) -> None:
    tickets = [await stored(store, f"GZ-ECHO-LIST-{n}") for n in range(3)]
    for ticket in tickets:
        await report(store, ticket, 1, "ACCEPTED")
        await asyncio.sleep(0.01)
    listed = await store.list_behind(later())
    assert [e.ticket_id for e in listed] == [t.ticket_id for t in tickets]
    assert [e.ticket_id for e in await store.list_behind(later(), limit=2)] == [t.ticket_id for t in tickets[:2]]
    assert await store.count_behind(later()) == 3
    assert all(e.latest_status == "ACCEPTED" and e.heard_status is None for e in listed)


async def test_a_status_before_any_event_is_heard_like_any_other(store: Store) -> None:
    # A held ticket returned by an operator (退单) reports RETURNED at the ticket's first sequence, -1.
    ticket = await stored(store, "GZ-ECHO-RETURNED")
    await report(store, ticket, -1, "RETURNED")
    echo = await store.get_echo(ticket.ticket_id)
    assert echo is not None and echo.heard_sequence is None and echo.behind_since is not None
    claim = await claim_one(store)
    await store.settle_delivered(claim, attempt(claim))
    echo = await store.get_echo(ticket.ticket_id)
    assert echo is not None
    assert (echo.heard_sequence, echo.heard_status, echo.behind_since) == (-1, "RETURNED", None)
