"""Polling the provincial 12345 system: store, then acknowledge, then move the cursor; back off; one poller per
adapter across processes; a slow partner times out without pollers piling up; statuses go back as ReplyOrder."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from adapters.base import PartnerUnavailable
from adapters.soap import SoapAdapter
from contracts.status import StatusEvent
from gateway.delivery.engine import DeliveryEngine
from gateway.pollers import LockLost, Poller, poll_lock_name, start_pollers
from gateway.store.base import TicketQuery
from gateway.store.sqlite import SqliteStore
from gateway.tickets.intake import IntakeService
from gateway.tickets.status import StatusService
from simulators.province12345 import Province12345, RunningProvince, run_in_thread
from tests.soap.conftest import ADAPTER_ID, PROVINCE_PASSWORD, PROVINCE_USER, polling_config

FIRST_PAGE = ["GZ12345-20240315-000123", "GZ12345-20240318-000517", "GZ12345-20240320-000042"]


async def wait_for(predicate: Any, within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)


async def test_a_poll_stores_then_acknowledges_then_moves_the_cursor(
        province: RunningProvince, store: SqliteStore, intake: IntakeService) -> None:
    adapter = SoapAdapter(polling_config(province.wsdl_url))
    poller = Poller(adapter, store, intake, owner="gateway-a")
    try:
        report = await poller.poll_once()
    finally:
        await adapter.aclose()
    assert report.ran and report.pulled == 3 and report.acknowledged == 3
    assert report.outcomes == {"created": 3}
    assert province.province.acked_ids() == FIRST_PAGE
    assert await store.get_cursor(ADAPTER_ID) == "3"
    stored = await store.search_tickets(TicketQuery(adapter_id=ADAPTER_ID))
    assert sorted(t.source.source_ticket_no for t in stored) == sorted(FIRST_PAGE)


async def test_returned_and_unmappable_orders_are_kept_and_acknowledged_too(
        province: RunningProvince, store: SqliteStore, intake: IntakeService) -> None:
    adapter = SoapAdapter(polling_config(province.wsdl_url))
    poller = Poller(adapter, store, intake, owner="gateway-a")
    try:
        await store.set_cursor(ADAPTER_ID, "3")
        report = await poller.poll_once()  # 04 建议 and 05 拆迁补偿 go back; 06 has a bad phone and time
    finally:
        await adapter.aclose()
    assert report.outcomes == {"returned": 2, "quarantined": 1}
    assert len(province.province.acked_ids()) == 3
    assert len(await store.list_quarantined(ADAPTER_ID)) == 3
    assert await store.get_cursor(ADAPTER_ID) == "6"


async def test_polling_until_drained_takes_every_order_once(
        province: RunningProvince, store: SqliteStore, intake: IntakeService) -> None:
    adapter = SoapAdapter(polling_config(province.wsdl_url))
    poller = Poller(adapter, store, intake, owner="gateway-a")
    try:
        reports = [await poller.poll_once()]
        while reports[-1].has_more:
            reports.append(await poller.poll_once())
        idle = await poller.poll_once()
    finally:
        await adapter.aclose()
    assert sum(r.pulled for r in reports) == 8
    assert idle.pulled == 0 and idle.cursor_after == "8"
    assert len(province.province.acked_ids()) == 8


class FailingIntake:
    """The real intake, except that storing one chosen order fails (a store outage mid-batch)."""

    def __init__(self, inner: IntakeService, fail_on: str) -> None:
        self.inner = inner
        self.fail_on = fail_on

    async def accept(self, adapter_id: str, payload: object, *, raw_body: bytes, content_type: str) -> Any:
        if isinstance(payload, dict) and payload.get("infoid") == self.fail_on:
            raise OSError("disk full")
        return await self.inner.accept(adapter_id, payload, raw_body=raw_body, content_type=content_type)


async def test_only_stored_orders_are_acknowledged_and_the_cursor_waits(
        province: RunningProvince, store: SqliteStore, intake: IntakeService) -> None:
    adapter = SoapAdapter(polling_config(province.wsdl_url))
    poller = Poller(adapter, store, FailingIntake(intake, FIRST_PAGE[1]), owner="gateway-a")  # type: ignore[arg-type]
    try:
        with pytest.raises(OSError, match="disk full"):
            await poller.poll_once()
        assert province.province.acked_ids() == FIRST_PAGE[:1]
        assert await store.get_cursor(ADAPTER_ID) is None
        poller.intake = intake  # the store is back: the page comes again, without the order already signed for
        report = await poller.poll_once()
    finally:
        await adapter.aclose()
    assert report.outcomes == {"created": 2, "returned": 1}  # orders 2 and 3 again, and 04 (建议) goes back
    assert province.province.acked_ids()[:3] == FIRST_PAGE
    assert await store.get_cursor(ADAPTER_ID) == "4"


async def test_the_poller_backs_off_exponentially_while_the_partner_fails(
        store: SqliteStore, intake: IntakeService) -> None:
    state = Province12345(username=PROVINCE_USER, password=PROVINCE_PASSWORD)
    state.seed_fixtures()
    with run_in_thread(state, server_faults=4) as running:
        adapter = SoapAdapter(polling_config(running.wsdl_url, backoff_initial=0.1, interval=5.0))
        scheduler = await start_pollers([adapter], store, intake, owner="gateway-a")
        try:
            await wait_for(lambda: len(state.acked_ids()) >= 3)
            status = scheduler.status()[ADAPTER_ID]
        finally:
            await scheduler.stop()
            await adapter.aclose()
    pulls = [at for op, at in state.call_log if op == "GetPendingOrders"]
    gaps = [b - a for a, b in itertools.pairwise(pulls)][:4]
    assert len(pulls) >= 5
    # 0.1, 0.2, 0.4, 0.8 s (no jitter configured). A gap is that wait plus the failed call before it, which a loaded
    # machine only lengthens: each gap is at least its wait (a poller that did not back off fails from the second).
    assert all(gap >= 0.1 * 2 ** n * 0.95 for n, gap in enumerate(gaps)), gaps
    assert status.consecutive_failures == 0
    assert status.last_error is not None and "soap:Server" in status.last_error


async def test_two_gateways_sharing_a_store_poll_one_adapter_from_one_of_them(
        province: RunningProvince, tmp_path: Path, intake: IntakeService) -> None:
    # Two "processes": two store connections on one database, two adapters, two schedulers.
    store_a = SqliteStore(tmp_path / "gateway.db", b"test-phone-hash-key")
    store_b = SqliteStore(tmp_path / "gateway.db", b"test-phone-hash-key")
    await store_a.open()
    await store_b.open()
    adapter_a = SoapAdapter(polling_config(province.wsdl_url, interval=0.05))
    adapter_b = SoapAdapter(polling_config(province.wsdl_url, interval=0.05))
    intake_b = IntakeService(store_b, intake.specs, intake.router, intake.rules, intake.calendar)
    a = await start_pollers([adapter_a], store_a, intake, owner="gateway-a")
    b = await start_pollers([adapter_b], store_b, intake_b, owner="gateway-b")
    try:
        await wait_for(lambda: len(province.province.acked_ids()) == 8)
        await asyncio.sleep(0.3)
        polled = {name: s.status()[ADAPTER_ID].polls for name, s in (("a", a), ("b", b))}
        skipped = {name: s.status()[ADAPTER_ID].skipped for name, s in (("a", a), ("b", b))}
        assert min(polled.values()) == 0, polled  # exactly one of them ever polled
        assert max(skipped.values()) > 0, skipped  # the other kept finding the lock taken
        holder = a if polled["a"] else b
        other = b if holder is a else a
        await holder.stop()  # the holder shuts down and releases the lock: the other takes over
        other.wake()
        await wait_for(lambda: other.status()[ADAPTER_ID].polls > 0, within=5)
    finally:
        await a.stop()
        await b.stop()
        for adapter in (adapter_a, adapter_b):
            await adapter.aclose()
        await store_a.close()
        await store_b.close()
    assert max(province.province.max_in_flight["GetPendingOrders"], 1) == 1


async def test_a_poll_that_lost_its_lock_tells_the_partner_nothing(
        province: RunningProvince, store: SqliteStore, intake: IntakeService) -> None:
    adapter = SoapAdapter(polling_config(province.wsdl_url))

    class StealingIntake:
        """Another process takes the lock while this one is storing (its lease ran out)."""

        async def accept(self, adapter_id: str, payload: object, *, raw_body: bytes, content_type: str) -> Any:
            await store.release_lock(poll_lock_name(ADAPTER_ID), "gateway-a")
            await store.try_lock(poll_lock_name(ADAPTER_ID), "gateway-b", 60)
            return await intake.accept(adapter_id, payload, raw_body=raw_body, content_type=content_type)

    poller = Poller(adapter, store, StealingIntake(), owner="gateway-a")  # type: ignore[arg-type]
    try:
        with pytest.raises(LockLost):
            await poller.poll_once()
    finally:
        await adapter.aclose()
    assert province.province.acked_ids() == []
    assert await store.get_cursor(ADAPTER_ID) is None


async def test_the_lock_is_renewed_while_a_long_poll_runs(
        province: RunningProvince, store: SqliteStore, intake: IntakeService) -> None:
    config = polling_config(province.wsdl_url, timeout=0.2)
    data = config.model_dump()
    data["poll"]["lock_ttl_seconds"] = 0.6
    adapter = SoapAdapter(type(config).model_validate(data))

    class SlowIntake:
        async def accept(self, adapter_id: str, payload: object, *, raw_body: bytes, content_type: str) -> Any:
            await asyncio.sleep(0.5)  # three orders: 1.5 s, well past the 0.6 s lock ttl
            return await intake.accept(adapter_id, payload, raw_body=raw_body, content_type=content_type)

    poller = Poller(adapter, store, SlowIntake(), owner="gateway-a")  # type: ignore[arg-type]
    try:
        task = asyncio.create_task(poller.poll_once())
        await asyncio.sleep(1.0)
        assert not await store.try_lock(poll_lock_name(ADAPTER_ID), "gateway-b", 1.0)
        report = await task
    finally:
        await adapter.aclose()
    assert report.acknowledged == 3


async def test_a_slow_partner_times_out_and_pollers_do_not_pile_up(
        store: SqliteStore, intake: IntakeService) -> None:
    state = Province12345(username=PROVINCE_USER, password=PROVINCE_PASSWORD)
    state.seed_fixtures()
    with run_in_thread(state, delay_seconds=30) as slow:
        adapter = SoapAdapter(polling_config(slow.wsdl_url, timeout=0.3, interval=0.05, backoff_initial=0.05))
        in_flight = 0
        most = 0
        pull = adapter.pull

        async def counting_pull(cursor: str | None) -> Any:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            try:
                return await pull(cursor)
            finally:
                in_flight -= 1

        adapter.pull = counting_pull  # type: ignore[method-assign]
        scheduler = await start_pollers([adapter], store, intake, owner="gateway-a")
        try:
            await wait_for(lambda: scheduler.status()[ADAPTER_ID].consecutive_failures >= 3, within=10)
            status = scheduler.status()[ADAPTER_ID]
        finally:
            await scheduler.stop()
            await adapter.aclose()
        await wait_for(lambda: state.in_flight["GetPendingOrders"] == 0, within=5)
    assert most == 1  # one pull in flight per adapter, however slow the partner
    assert state.max_in_flight["GetPendingOrders"] == 1  # the timed-out call was abandoned, not left hanging
    assert status.last_error is not None and "Timeout" in status.last_error
    assert state.acked_ids() == []


async def test_a_status_change_goes_back_to_the_province_as_reply_order(
        province: RunningProvince, store: SqliteStore, intake: IntakeService) -> None:
    adapter = SoapAdapter(polling_config(province.wsdl_url))
    poller = Poller(adapter, store, intake, owner="gateway-a")
    (destination,) = [d for d in [adapter.callback_destination()] if d is not None]
    sender = adapter.callback_sender()
    assert sender is not None
    engine = DeliveryEngine(store, [destination], senders={destination.name: sender})
    statuses = StatusService(store, intake.specs, intake.router, {ADAPTER_ID: adapter}, intake.rules, intake.calendar)
    try:
        await poller.poll_once()
        (ticket,) = await store.search_tickets(TicketQuery(source_ticket_no=FIRST_PAGE[0]))
        at = datetime.now(UTC)
        for sequence, status in ((1, "ACCEPTED"), (2, "MEDIATING"), (3, "MEDIATED"), (4, "CLOSED")):
            await statuses.apply(StatusEvent(event_id=f"e-{sequence}", ticket_id=ticket.ticket_id, sequence=sequence,
                                             at=at, status=status, org="凯里市市场监督管理局",  # type: ignore[arg-type]
                                             actor="吴调解", opinion="经调解，商家退还餐费386元"))
        await engine.start()
        await wait_for(lambda: len(province.province.replies_for(FIRST_PAGE[0])) == 4)
    finally:
        await engine.stop()
        await adapter.aclose()
    replies = province.province.replies_for(FIRST_PAGE[0])
    assert [r.type for r in replies] == ["回单", "回单", "回单", "办结"]  # 办结 once, and last
    assert replies[-1].fields["isend"] == "1"
    assert replies[-1].fields["replyorg"] == "凯里市市场监督管理局"
    assert replies[-1].fields["replycontent"] == "经调解，商家退还餐费386元"


async def test_an_adapter_without_a_reachable_wsdl_backs_off_instead_of_crashing(
        store: SqliteStore, intake: IntakeService) -> None:
    adapter = SoapAdapter(polling_config("http://127.0.0.1:9/ws/order?wsdl", backoff_initial=0.05))
    scheduler = await start_pollers([adapter], store, intake, owner="gateway-a")
    try:
        await wait_for(lambda: scheduler.status()[ADAPTER_ID].consecutive_failures >= 2, within=5)
    finally:
        await scheduler.stop()
        await adapter.aclose()
    assert "cannot load the WSDL" in (scheduler.status()[ADAPTER_ID].last_error or "")
    assert PartnerUnavailable.__name__ in (scheduler.status()[ADAPTER_ID].last_error or "")
