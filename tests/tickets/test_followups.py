"""Partner follow-ups on a real store: a new version or supplement updates the known ticket and sends the national
platform an update of the same registration; an urge is counted; a withdrawal is recorded; repeats change nothing."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.loading import load_adapters
from adapters.secrets import credential_variables, ensure_demo_credentials
from contracts.delivery import DeliveryKind, DeliveryReceipt
from contracts.ticket import idempotency_key_of
from gateway.config import GatewaySettings, load_settings
from gateway.runtime import Runtime
from gateway.store.base import DeliveryFilter, TicketQuery
from gateway.store.postgres import PostgresStore
from gateway.store.sqlite import SqliteStore
from gateway.tickets.intake import IntakeService
from tests.store.postgres_schemas import drop_schema, new_schema, pool_settings
from tests.store.store_support import attempt

FIXTURES = Path(__file__).resolve().parents[2] / "mapping" / "fixtures"
CITY = "city-12345-rest"
NUMBER = "KL12345-2024-031500057"  # hotlineNo of the city fixtures 01 and 09-12


def fixture(adapter_id: str, name: str) -> tuple[dict[str, Any], bytes]:
    raw = (FIXTURES / adapter_id / f"{name}.json").read_bytes()
    return json.loads(raw), raw


def demo_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> GatewaySettings:
    """The demo configuration with its data (and partner credentials) under tmp_path, no credit look-up."""
    monkeypatch.setenv("HIG_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HIG_CREDIT_LOOKUP__URL", "")
    settings = load_settings()
    configs = load_adapters(settings.resolve(settings.adapters_dir))
    for config in configs.values():
        for name, _ in credential_variables(config):
            monkeypatch.delenv(name, raising=False)
    ensure_demo_credentials(settings.resolved_data_dir, configs)
    return settings


@pytest.fixture
async def intake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[IntakeService]:
    settings = demo_settings(tmp_path, monkeypatch)
    store = SqliteStore(tmp_path / "gateway.db", b"followups-test-key")
    runtime = Runtime.build(settings, store=store)
    await store.open()
    yield runtime.intake
    await store.close()


async def take(intake: IntakeService, name: str, adapter_id: str = CITY, **changes: Any) -> Any:
    payload, raw = fixture(adapter_id, name)
    if changes:
        payload = {**payload, **changes}
        raw = json.dumps(payload, ensure_ascii=False).encode("utf-8")
    return await intake.accept(adapter_id, payload, raw_body=raw, content_type="application/json")


async def national_deliveries(intake: IntakeService, ticket_id: str) -> list[DeliveryReceipt]:
    found = await intake.store.list_deliveries(DeliveryFilter(ticket_id=ticket_id, destination="national"))
    return sorted(found, key=lambda d: d.created_at)


async def bodies(intake: IntakeService, ticket_id: str) -> list[dict[str, Any]]:
    """What the national lane sends for the ticket, in order (the forward, then each follow-up), taken one at a time
    as the lane would: the next is claimable only once the one before it is settled."""
    sent: list[dict[str, Any]] = []
    while claims := await intake.store.claim("national", "test", 60, limit=50):
        for claim in claims:
            await intake.store.settle_delivered(claim, attempt(claim))
            if claim.ticket_id == ticket_id:
                sent.append(json.loads(claim.body))
    return sent


async def test_a_higher_version_updates_the_same_ticket_and_sends_an_update_of_its_registration(
        intake: IntakeService) -> None:
    first = await take(intake, "01-food-complaint")
    second = await take(intake, "09-food-complaint-version-2")

    assert (second.kind, second.ticket_id, second.follow_up) == ("updated", first.ticket_id, "new_version")
    ticket = await intake.store.get_ticket(first.ticket_id)
    assert ticket is not None
    assert ticket.source.source_version == "2"
    assert ticket.registration.request == "退款并给予十倍赔偿，要求超市下架同批次过期商品"
    assert ticket.routing.handler_org_code is not None  # the gateway's decisions stay
    original_key = idempotency_key_of("city-12345", NUMBER, "1")
    v2_key = idempotency_key_of("city-12345", NUMBER, "2")
    assert [(v.version, v.kind, v.idempotency_key) for v in ticket.sender_updates.versions] == [
        ("1", "original", original_key), ("2", "new_version", v2_key)]
    assert ticket.sender_updates.versions[1].changed == ["registration"]
    # both raw payloads are kept, each under its version
    assert await intake.store.get_raw_payload(ticket.ticket_id) == (fixture(CITY, "01-food-complaint")[1],
                                                                    "application/json")
    raw_v2 = await intake.store.get_raw_payload(ticket.ticket_id, v2_key)
    assert raw_v2 is not None and json.loads(raw_v2[0])["version"] == 2
    # one ticket, and the national lane has the forward then an update of the same registration
    assert len(await intake.store.search_tickets(TicketQuery(source_ticket_no=NUMBER))) == 1
    deliveries = await national_deliveries(intake, ticket.ticket_id)
    assert [d.kind for d in deliveries] == [DeliveryKind.FORWARD, DeliveryKind.UPDATE]
    forward, update = await bodies(intake, ticket.ticket_id)
    assert forward["source"]["source_version"] == "1"
    assert (update["operation"], update["registration_key"], update["version"]) == ("update", original_key, "2")
    assert update["ticket"]["ticket_id"] == ticket.ticket_id
    assert update["ticket"]["registration"]["request"] == ticket.registration.request


async def test_an_equal_or_older_version_is_a_repeat_that_changes_nothing(intake: IntakeService) -> None:
    first = await take(intake, "01-food-complaint")
    await take(intake, "09-food-complaint-version-2")
    again = await take(intake, "09-food-complaint-version-2")
    older = await take(intake, "09-food-complaint-version-2", version="1", appealRequest="旧版本")
    stale = await take(intake, "01-food-complaint")

    assert [(o.kind, o.ticket_id) for o in (again, older, stale)] == [("repeat", first.ticket_id)] * 3
    ticket = await intake.store.get_ticket(first.ticket_id)
    assert ticket is not None and ticket.source.source_version == "2"
    assert len(ticket.sender_updates.versions) == 2
    assert len(await national_deliveries(intake, first.ticket_id)) == 2


async def test_versions_compare_as_numbers(intake: IntakeService) -> None:
    first = await take(intake, "01-food-complaint", version="9")
    tenth = await take(intake, "09-food-complaint-version-2", version="10")
    assert (tenth.kind, tenth.ticket_id) == ("updated", first.ticket_id)


async def test_a_supplement_adds_its_material_as_the_next_version(intake: IntakeService) -> None:
    first = await take(intake, "01-food-complaint")
    supplement = await take(intake, "10-food-complaint-supplement")
    repeated = await take(intake, "10-food-complaint-supplement")

    assert (supplement.kind, supplement.ticket_id, supplement.follow_up) == ("updated", first.ticket_id, "supplement")
    assert repeated.kind == "repeat"
    ticket = await intake.store.get_ticket(first.ticket_id)
    assert ticket is not None
    assert ticket.source.source_version == "3"  # the version the partner gave it
    assert ticket.registration.content.endswith(
        "【补充材料 2024-03-16 09:05】市民补充材料：已上传购物小票照片及过期酸奶包装照片，生产日期清晰可见。")
    last = ticket.sender_updates.versions[-1]
    assert (last.kind, last.reference) == ("supplement", "BC-2024-0316-0012")
    _, update = await bodies(intake, first.ticket_id)
    assert (update["operation"], update["version"]) == ("update", "3")
    assert update["text"].startswith("市民补充材料")


async def test_a_supplement_without_a_version_takes_the_next_number(intake: IntakeService) -> None:
    first = await take(intake, "01-food-complaint")
    payload, _ = fixture(CITY, "10-food-complaint-supplement")
    del payload["version"]
    outcome = await intake.accept(CITY, payload, raw_body=json.dumps(payload).encode(), content_type="application/json")
    assert outcome.kind == "updated"
    ticket = await intake.store.get_ticket(first.ticket_id)
    assert ticket is not None and ticket.source.source_version == "2"


async def test_an_urge_is_counted_once_however_often_it_is_sent_and_forwarded(intake: IntakeService) -> None:
    first = await take(intake, "01-food-complaint")
    urged = await take(intake, "11-food-complaint-urge")
    again = await take(intake, "11-food-complaint-urge")
    second = await take(intake, "11-food-complaint-urge", msgNo="CB-2024-0321-0002", msgTime="2024-03-21 09:00:00")

    assert [o.kind for o in (urged, again, second)] == ["updated", "repeat", "updated"]
    ticket = await intake.store.get_ticket(first.ticket_id)
    assert ticket is not None
    assert ticket.sender_updates.urge_count == 2
    assert [u.reference for u in ticket.sender_updates.urges] == ["CB-2024-0320-0031", "CB-2024-0321-0002"]
    assert [d.kind for d in await national_deliveries(intake, first.ticket_id)] == [
        DeliveryKind.FORWARD, DeliveryKind.URGE, DeliveryKind.URGE]
    _, urge, _ = await bodies(intake, first.ticket_id)
    assert (urge["operation"], urge["text"]) == ("urge", "市民来电催办：投诉已5天，商家仍未联系退款，请尽快处理。")
    assert "ticket" not in urge


async def test_a_withdrawal_is_recorded_as_requested_and_forwarded_once(intake: IntakeService) -> None:
    first = await take(intake, "01-food-complaint")
    withdrawn = await take(intake, "12-food-complaint-withdrawal")
    again = await take(intake, "12-food-complaint-withdrawal", msgNo="CS-2024-0321-0008")

    assert (withdrawn.kind, withdrawn.follow_up) == ("updated", "withdrawal")
    assert again.kind == "repeat"  # asked once; the platform has not refused it
    ticket = await intake.store.get_ticket(first.ticket_id)
    assert ticket is not None and ticket.sender_updates.withdrawal is not None
    assert ticket.sender_updates.withdrawal.state == "requested"
    assert ticket.lifecycle.status.value == "RECEIVED"  # the platform's answer moves it, not the request
    assert [d.kind for d in await national_deliveries(intake, first.ticket_id)] == [
        DeliveryKind.FORWARD, DeliveryKind.WITHDRAW]


async def test_a_follow_up_of_an_unknown_ticket_is_kept_in_quarantine_naming_the_number(
        intake: IntakeService) -> None:
    outcome = await take(intake, "11-food-complaint-urge")

    assert outcome.kind == "quarantined"
    (error,) = outcome.errors
    assert (error.field, error.rule, error.value) == ("follow_up.source_ticket_no", "unknown_ticket", NUMBER)
    assert error.message_zh == "后续所指的来源工单号：网关没有这张工单：补充材料、催办、撤诉须针对已转来的工单"
    kept = await intake.store.get_quarantined(outcome.quarantine_id)
    assert kept is not None and json.loads(kept.body)["msgNo"] == "CB-2024-0320-0031"


async def test_an_unmappable_follow_up_is_quarantined_with_the_field_and_source_path(intake: IntakeService) -> None:
    await take(intake, "01-food-complaint")
    outcome = await take(intake, "13-urge-without-time")
    assert outcome.kind == "quarantined"
    assert [(e.field, e.source_path) for e in outcome.errors] == [("follow_up.at", "msgTime")]


async def test_follow_ups_from_the_polled_lines_reach_their_tickets(intake: IntakeService) -> None:
    for adapter_id, names in {
        "legacy-registration": ["01-12365-quality-complaint", "09-12365-complaint-version-2",
                                "10-12365-complaint-supplement", "11-12365-complaint-urge",
                                "12-12365-complaint-withdrawal"],
        "province-12345-soap": ["01-food-complaint-kaili", "09-food-complaint-version-2",
                                "10-food-complaint-supplement", "11-food-complaint-urge",
                                "12-food-complaint-withdrawal"],
    }.items():
        outcomes = [await take(intake, name, adapter_id) for name in names]
        assert [o.kind for o in outcomes] == ["created", "updated", "updated", "updated", "updated"], adapter_id
        assert len({o.ticket_id for o in outcomes}) == 1
        ticket = await intake.store.get_ticket(outcomes[0].ticket_id)
        assert ticket is not None
        assert [v.version for v in ticket.sender_updates.versions] == ["1", "2", "3"]
        assert ticket.sender_updates.urge_count == 1
        assert ticket.sender_updates.withdrawal is not None


async def test_two_gateways_taking_versions_of_one_number_at_once_make_one_ticket_every_time(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two gateway processes on one PostgreSQL schema each take a different version of the same work order at the
    same moment, many times over: one ticket per number, carrying version 2, with both versions on its record."""
    settings = demo_settings(tmp_path, monkeypatch)
    schema = new_schema()
    stores = [PostgresStore(pool_settings(schema), b"followups-race-key") for _ in range(2)]
    gateways = [Runtime.build(settings, store=store).intake for store in stores]
    for store in stores:
        await store.open()
    try:
        v1, raw1 = fixture(CITY, "01-food-complaint")
        v2, raw2 = fixture(CITY, "09-food-complaint-version-2")
        for n in range(30):
            number = f"KL12345-2024-RACE{n:05d}"
            pushes = [(v1, raw1), (v2, raw2)] if n % 2 else [(v2, raw2), (v1, raw1)]
            outcomes = await asyncio.gather(*(
                gateway.accept(CITY, {**payload, "hotlineNo": number},
                               raw_body=raw.replace(NUMBER.encode(), number.encode()),
                               content_type="application/json")
                for gateway, (payload, raw) in zip(gateways, pushes, strict=True)))
            assert len({o.ticket_id for o in outcomes}) == 1, outcomes
            assert sorted(o.kind for o in outcomes) in (["created", "updated"], ["created", "repeat"]), outcomes
            found = await stores[0].search_tickets(TicketQuery(source_ticket_no=number))
            assert [t.ticket_id for t in found] == [outcomes[0].ticket_id]
            ticket = found[0]
            assert ticket.source.source_version == "2"
            assert sorted(v.version for v in ticket.sender_updates.versions) == ["1", "2"]
        forwards = await stores[1].list_deliveries(DeliveryFilter(destination="national", limit=500))
        assert sum(d.kind is DeliveryKind.FORWARD for d in forwards) == 30
    finally:
        for store in stores:
            await store.close()
        await drop_schema(schema)
