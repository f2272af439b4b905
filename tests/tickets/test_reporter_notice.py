"""The partner callback lane keeps the reporter notice: the callback carrying a named report's filing decision,
delivered (2xx) to a real receiver, tells the reporter on the ticket once; a refused one tells nothing; one whose
telling cannot be kept is not done, and is sent again."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.destination import DestinationConfig
from adapters.wire.senders import HttpSender
from contracts.codesets import Status
from contracts.delivery import DeliveryKind, OutboxEntry, ReportedStatus
from contracts.status import StatusEvent
from contracts.ticket import Deadline, Ticket
from gateway.store.sqlite import SqliteStore
from gateway.tickets.deadlines import CHINA_TZ, RuleBook, WorkingDayCalendar, with_deadlines
from gateway.tickets.lifecycle import apply_status_event
from gateway.tickets.reporter_notice import PartnerCallbackSender
from simulators.receiver import Action, Receiver, ReceiverThread
from tests.sample_tickets import make_ticket
from tests.store.store_support import attempt
from tests.tickets.test_national_link import BusyTicketStore

LANE = "callback:city-12345-rest"
KEY = b"reporter-notice-test-key"


@pytest.fixture
def partner() -> Iterator[Receiver]:
    with ReceiverThread() as rx:
        yield rx


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    store = SqliteStore(tmp_path / "gateway.db", KEY)
    await store.open()
    yield store
    await store.close()


def decided(rules: RuleBook, calendar: WorkingDayCalendar, decision: Status = Status.FILED) -> Ticket:
    """A named report received 2023-09-25, accepted, then decided 2023-10-16: its notice due 2023-10-23."""
    ticket = with_deadlines(make_ticket("report", source__source_received_at="2023-09-25T10:00:00+08:00",
                                        registration__registered_at="2023-09-25T10:05:00+08:00"), rules, calendar)
    for sequence, (status, day) in enumerate(((Status.ACCEPTED, "2023-09-26"), (decision, "2023-10-16"))):
        event = StatusEvent(event_id=f"evt-{sequence}", ticket_id=ticket.ticket_id, sequence=sequence,
                            at=f"{day}T15:00:00+08:00", status=status)
        ticket = with_deadlines(apply_status_event(ticket, event).ticket, rules, calendar)
    return ticket


def callback(sequence: int, status: str) -> OutboxEntry:
    return OutboxEntry(destination=LANE, kind=DeliveryKind.CALLBACK, body=b'{"hotlineNo":"KL-1","handleStatus":"1"}',
                       idempotency_key=f"notice-test:{sequence}", reports=ReportedStatus(sequence, status))


def sender(store: SqliteStore, partner: Receiver, rules: RuleBook, calendar: WorkingDayCalendar
           ) -> PartnerCallbackSender:
    return PartnerCallbackSender(HttpSender(DestinationConfig(name=LANE, url=f"{partner.url}/callbacks")), store,
                                 lambda: (rules, calendar))


def notice(ticket: Ticket | None) -> Deadline:
    assert ticket is not None
    [found] = [d for d in ticket.routing.deadlines if d.kind == "reporter_notice"]
    return found


async def test_the_delivered_filing_decision_tells_the_reporter_once(
        store: SqliteStore, partner: Receiver, rules: RuleBook, calendar: WorkingDayCalendar) -> None:
    ticket = decided(rules, calendar)
    await store.intake(ticket, b"{}", "application/json", [callback(0, "ACCEPTED"), callback(1, "FILED")])
    intaken = await store.get_ticket(ticket.ticket_id)
    assert intaken is not None
    lane = sender(store, partner, rules, calendar)
    try:
        [accepted] = await store.claim(LANE, "w", 30)
        assert (await lane.send(accepted)).status_code == 200
        unchanged = await store.get_ticket(ticket.ticket_id)
        assert unchanged == intaken  # an acceptance tells no reporter
        await store.settle_delivered(accepted, attempt(accepted))

        [filed] = await store.claim(LANE, "w", 30)
        before = datetime.now(UTC)
        assert (await lane.send(filed)).status_code == 200
        after = datetime.now(UTC)
        stored = await store.get_ticket(ticket.ticket_id)
        assert stored is not None
        told_at = stored.lifecycle.reporter_notified_at
        assert told_at is not None and before <= told_at <= after
        # Delivered years after the due day (this test runs after 2023): missed, on the day of the delivery.
        assert (notice(stored).outcome, notice(stored).ended_on, notice(stored).ended_by) == (
            "missed", told_at.astimezone(CHINA_TZ).date(), Status.FILED)

        assert (await lane.send(filed)).status_code == 200  # sent again (a lost lease): the first delivery counts
        assert await store.get_ticket(ticket.ticket_id) == stored
    finally:
        await lane.aclose()


async def test_a_refused_filing_decision_tells_nobody(
        store: SqliteStore, partner: Receiver, rules: RuleBook, calendar: WorkingDayCalendar) -> None:
    ticket = decided(rules, calendar, Status.NOT_FILED)
    await store.intake(ticket, b"{}", "application/json", [callback(1, "NOT_FILED")])
    partner.set_outage(Action(status=500, body='{"code":500}'))
    lane = sender(store, partner, rules, calendar)
    try:
        [claim] = await store.claim(LANE, "w", 30)
        assert (await lane.send(claim)).status_code == 500
        stored = await store.get_ticket(ticket.ticket_id)
        assert stored is not None and stored.lifecycle.reporter_notified_at is None
        assert notice(stored).running
    finally:
        await lane.aclose()


async def test_a_telling_that_cannot_be_kept_is_not_done_and_is_sent_again(
        tmp_path: Path, partner: Receiver, rules: RuleBook, calendar: WorkingDayCalendar) -> None:
    """The partner took the filing decision, but every try to keep that on the ticket lost to another writer: the
    delivery must not count as done (the notice would run on for good); sent again, the partner dedupes it."""
    store = BusyTicketStore(tmp_path / "gateway.db", KEY)
    store.busy = False
    await store.open()
    ticket = decided(rules, calendar)
    await store.intake(ticket, b"{}", "application/json", [callback(1, "FILED")])
    lane = sender(store, partner, rules, calendar)
    try:
        [claim] = await store.claim(LANE, "w", 30)
        store.busy = True
        first = await lane.send(claim)
        assert (first.status_code, first.error_class) == (None, "answer_not_kept")
        assert notice(await store.get_ticket(ticket.ticket_id)).running
        store.busy = False
        assert (await lane.send(claim)).status_code == 200
        assert notice(await store.get_ticket(ticket.ticket_id)).outcome == "missed"
        assert partner.wait_until(lambda rx: rx.stats().answered == {"200": 2}, timeout=5)  # both taken
    finally:
        await lane.aclose()
        await store.close()
