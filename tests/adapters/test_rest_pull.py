"""Polling a REST partner: cursor in the store, every item stored before the partner hears an ack, back-off."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from adapters.base import PartnerUnavailable
from adapters.config import AdapterConfig
from adapters.loading import load_adapters
from adapters.rest import RestAdapter
from gateway.pollers import Poller, PollScheduler
from gateway.store.base import TicketQuery
from gateway.store.sqlite import SqliteStore
from gateway.tickets.intake import IntakeOutcome, IntakeService
from simulators import credit, legacy
from simulators.credit import CreditSupervision
from simulators.legacy import LegacyRegistration
from tests.adapters.adapter_support import DEMO_ADAPTERS, PHONE_KEY, build_intake
from tests.delivery.delivery_support import drop_redis_namespace, make_redis_store

LEGACY = "legacy-registration"
CREDIT = "credit-supervision"


def configured(tmp_path: Path, adapter_id: str, partner_url: str, demo_url: str) -> dict[str, AdapterConfig]:
    """The demo adapter file, pointed at a simulator on a free port, loaded as the gateway loads it."""
    folder = tmp_path / "adapters"
    folder.mkdir(exist_ok=True)
    text = (DEMO_ADAPTERS / f"{adapter_id}.yaml").read_text(encoding="utf-8").replace(demo_url, partner_url)
    (folder / f"{adapter_id}.yaml").write_text(text, encoding="utf-8")
    return load_adapters(folder)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteStore]:
    s = SqliteStore(tmp_path / "gateway.db", PHONE_KEY)
    await s.open()
    try:
        yield s
    finally:
        await s.close()


@pytest.fixture
def legacy_system() -> Iterator[LegacyRegistration]:
    with legacy.run_in_thread() as sim:
        yield sim


@pytest.fixture
def legacy_configs(dev_credentials: dict[str, str], legacy_system: LegacyRegistration,
                   tmp_path: Path) -> dict[str, AdapterConfig]:
    assert legacy_system.url is not None
    return configured(tmp_path, LEGACY, legacy_system.url, "http://127.0.0.1:8412")


@pytest.fixture
async def legacy_adapter(legacy_configs: dict[str, AdapterConfig]) -> AsyncIterator[RestAdapter]:
    adapter = RestAdapter(legacy_configs[LEGACY])
    try:
        yield adapter
    finally:
        await adapter.aclose()


@pytest.fixture
def intake(store: SqliteStore, legacy_configs: dict[str, AdapterConfig]) -> IntakeService:
    return build_intake(store, legacy_configs)


class FailingAfter:
    """The real intake, failing (as a store outage would) from the n-th ticket on."""

    def __init__(self, intake: IntakeService, succeed: int) -> None:
        self.intake = intake
        self.left = succeed

    async def accept(self, adapter_id: str, payload: object, *, raw_body: bytes, content_type: str) -> IntakeOutcome:
        if self.left == 0:
            raise ConnectionError("the store is unavailable")
        self.left -= 1
        return await self.intake.accept(adapter_id, payload, raw_body=raw_body, content_type=content_type)


async def test_a_poll_stores_every_record_then_acks_them_and_moves_the_cursor(
        legacy_adapter: RestAdapter, store: SqliteStore, intake: IntakeService,
        legacy_system: LegacyRegistration) -> None:
    poller = Poller(legacy_adapter, store, intake, owner="gw-1")

    report = await poller.poll_once()

    records = legacy_system.records()
    assert report.pulled == len(records) == len(legacy_system.fixtures)
    assert sum(report.outcomes.values()) == len(records)
    assert legacy_system.acked() == [r.djbh for r in records]
    assert await store.get_cursor(LEGACY) == str(len(records))
    stored = await store.search_tickets(TicketQuery(adapter_id=LEGACY))
    assert len(stored) == report.outcomes["created"] > 0
    assert report.outcomes.get("quarantined", 0) > 0  # 06-bad-id-and-credit-code is kept for review


async def test_the_next_poll_asks_from_the_cursor_and_brings_only_what_is_new(
        legacy_adapter: RestAdapter, store: SqliteStore, intake: IntakeService,
        legacy_system: LegacyRegistration) -> None:
    poller = Poller(legacy_adapter, store, intake, owner="gw-1")
    await poller.poll_once()
    seen = len(legacy_system.records())
    legacy_system.add_fixture("01-12365-quality-complaint", fresh=True)

    report = await poller.poll_once()

    assert legacy_system.pulls()[-1].since == str(seen)
    assert report.pulled == 1
    assert report.outcomes == {"created": 1}
    assert await store.get_cursor(LEGACY) == str(seen + 1)


async def test_when_storing_fails_only_what_was_stored_is_acked_and_the_cursor_stays(
        legacy_adapter: RestAdapter, store: SqliteStore, intake: IntakeService,
        legacy_system: LegacyRegistration) -> None:
    with pytest.raises(ConnectionError):
        await Poller(legacy_adapter, store, FailingAfter(intake, succeed=2), owner="gw-1").poll_once()

    numbers = [r.djbh for r in legacy_system.records()]
    assert legacy_system.acked() == numbers[:2]
    assert await store.get_cursor(LEGACY) is None

    report = await Poller(legacy_adapter, store, intake, owner="gw-1").poll_once()

    assert report.outcomes["repeat"] == 2
    assert legacy_system.acked() == numbers


async def test_a_partner_that_is_down_hears_no_ack_and_keeps_its_cursor(
        legacy_adapter: RestAdapter, store: SqliteStore, intake: IntakeService,
        legacy_system: LegacyRegistration) -> None:
    legacy_system.faults.down = True

    with pytest.raises(PartnerUnavailable, match="answered 503"):
        await Poller(legacy_adapter, store, intake, owner="gw-1").poll_once()

    assert legacy_system.acked() == []
    assert await store.get_cursor(LEGACY) is None


async def test_the_poller_backs_off_while_the_partner_fails_and_recovers_after(
        legacy_adapter: RestAdapter, store: SqliteStore, intake: IntakeService,
        legacy_system: LegacyRegistration) -> None:
    poller = Poller(legacy_adapter, store, intake, owner="gw-1")
    legacy_system.faults.down = True
    task = asyncio.create_task(poller.run())
    try:
        await wait_for(lambda: poller.status.consecutive_failures >= 1)
        assert 4.0 <= poller.status.next_poll_in <= 6.0  # backoff.initial 5 s ± 20 %
        assert poller.backoff_delay(3) > poller.backoff_delay(1) * 2.5
        legacy_system.faults.down = False
        poller.wake()
        # the run loop clears the failure count just after the poll it counted: wait for both
        await wait_for(lambda: poller.status.polls == 1 and poller.status.consecutive_failures == 0)
        assert legacy_system.acked() == [r.djbh for r in legacy_system.records()]
        assert poller.status.last_error is not None and "503" in poller.status.last_error
    finally:
        poller.stop()
        await asyncio.wait_for(task, 5)


async def test_only_one_process_polls_an_adapter_at_a_time(
        legacy_adapter: RestAdapter, store: SqliteStore, intake: IntakeService,
        legacy_system: LegacyRegistration) -> None:
    first = Poller(legacy_adapter, store, intake, owner="gw-1")
    second = Poller(legacy_adapter, store, intake, owner="gw-2")
    await first.poll_once()

    report = await second.poll_once()

    assert report.ran is False
    assert len(legacy_system.pulls()) == 1


async def test_a_poll_lock_left_by_a_crashed_process_expires(
        legacy_adapter: RestAdapter, store: SqliteStore, intake: IntakeService,
        legacy_system: LegacyRegistration) -> None:
    assert await store.try_lock("poll:legacy-registration", "crashed-gw", ttl_seconds=0.2)
    await asyncio.sleep(0.3)

    report = await Poller(legacy_adapter, store, intake, owner="gw-2").poll_once()

    assert report.ran is True


async def test_a_wrong_outbound_key_is_a_partner_failure(
        monkeypatch: pytest.MonkeyPatch, legacy_configs: dict[str, AdapterConfig]) -> None:
    monkeypatch.setenv("PARTNER_LEGACY_OUTBOUND_KEY", "wrong")
    adapter = RestAdapter(legacy_configs[LEGACY])
    try:
        with pytest.raises(PartnerUnavailable, match="answered 401"):
            await adapter.pull(None)
    finally:
        await adapter.aclose()


async def test_the_scheduler_polls_every_pulling_adapter_until_stopped(
        legacy_adapter: RestAdapter, store: SqliteStore, intake: IntakeService,
        legacy_system: LegacyRegistration) -> None:
    scheduler = PollScheduler([legacy_adapter], store, intake, owner="gw-1")
    await scheduler.start()
    try:
        await wait_for(lambda: len(legacy_system.acked()) == len(legacy_system.records()))
    finally:
        await scheduler.stop()

    assert scheduler.status()[LEGACY].tickets == len(legacy_system.records())
    assert await store.try_lock("poll:legacy-registration", "gw-2", ttl_seconds=1)  # released on stop


async def test_a_partner_paged_by_offset_is_polled_without_acks(
        dev_credentials: dict[str, str], store: SqliteStore, tmp_path: Path) -> None:
    with credit.run_in_thread() as sim:
        assert sim.url is not None
        configs = configured(tmp_path, CREDIT, sim.url, "http://127.0.0.1:8414")
        adapter = RestAdapter(configs[CREDIT])
        try:
            report = await Poller(adapter, store, build_intake(store, configs), owner="gw-1").poll_once()
            again = await Poller(adapter, store, build_intake(store, configs), owner="gw-1").poll_once()
        finally:
            await adapter.aclose()

    assert isinstance(sim, CreditSupervision)
    assert report.pulled == len(sim.fixtures)
    assert report.cursor_after == str(len(sim.fixtures))
    assert again.pulled == 0


async def wait_for(condition: object, within: float = 30.0) -> None:
    assert callable(condition)
    deadline = asyncio.get_running_loop().time() + within
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_a_partner_answering_in_gbk_is_read_in_gbk(
        dev_credentials: dict[str, str], store: SqliteStore, tmp_path: Path) -> None:
    with legacy.run_in_thread(charset="gbk") as sim:
        assert sim.url is not None
        configs = configured(tmp_path, LEGACY, sim.url, "http://127.0.0.1:8412")
        adapter = RestAdapter(configs[LEGACY])
        try:
            batch = await adapter.pull(None)
        finally:
            await adapter.aclose()

    assert [item.payload for item in batch.items] == [r.record for r in sim.records()]
    assert any("锦屏县市场监督管理局" in item.raw_body.decode("utf-8") for item in batch.items)


async def test_two_gateway_processes_sharing_redis_do_not_poll_one_adapter_at_once(
        legacy_adapter: RestAdapter, legacy_configs: dict[str, AdapterConfig],
        legacy_system: LegacyRegistration) -> None:
    namespace = f"test-poll-{uuid.uuid4().hex[:10]}"
    first, second = make_redis_store(namespace), make_redis_store(namespace)
    await first.open()
    await second.open()
    try:
        intake_one, intake_two = build_intake(first, legacy_configs), build_intake(second, legacy_configs)
        reports = await asyncio.gather(Poller(legacy_adapter, first, intake_one, owner="gw-1").poll_once(),
                                       Poller(legacy_adapter, second, intake_two, owner="gw-2").poll_once())
    finally:
        await first.close()
        await second.close()
        await drop_redis_namespace(namespace)

    assert sorted(r.ran for r in reports) == [False, True]
    assert len(legacy_system.pulls()) == 1
