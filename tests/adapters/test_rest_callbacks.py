"""REST status write-back: signed (Standard Webhooks) to the URL in configuration, verified by the partner."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from ulid import ULID

from adapters.config import AdapterConfig
from adapters.loading import load_adapters
from adapters.rest import RestAdapter
from adapters.wire.senders import Sender
from contracts.delivery import ClaimedDelivery, DeliveryKind
from contracts.status import StatusEvent
from gateway.delivery.engine import DeliveryEngine
from gateway.store.sqlite import SqliteStore
from mapping import reverse, spec_for
from simulators import city12345
from simulators.city12345 import City12345
from simulators.peer import load_fixtures, with_fresh_number
from tests.adapters.adapter_support import DEMO_ADAPTERS, PHONE_KEY, build_intake

CITY = "city-12345-rest"
OLD_SECRET = "whsec_ZGV2LWNpdHkxMjM0NS1jYWxsYmFjay1rZXkhIQ=="  # the city's dev secret
NEW_SECRET = "whsec_bmV3LWNpdHktY2FsbGJhY2sta2V5LTIwMjY="


@pytest.fixture
def city() -> Iterator[City12345]:
    with city12345.run_in_thread() as sim:
        yield sim


def city_config(tmp_path: Path, sim: City12345) -> AdapterConfig:
    folder = tmp_path / "adapters"
    folder.mkdir(exist_ok=True)
    text = (DEMO_ADAPTERS / f"{CITY}.yaml").read_text(encoding="utf-8")
    (folder / f"{CITY}.yaml").write_text(text.replace("http://127.0.0.1:8411/callbacks", sim.callback_url),
                                         encoding="utf-8")
    return load_adapters(folder)[CITY]


@pytest.fixture
async def sender(dev_credentials: dict[str, str], city: City12345, tmp_path: Path) -> AsyncIterator[Sender]:
    built = RestAdapter(city_config(tmp_path, city)).callback_sender()
    assert built is not None
    try:
        yield built
    finally:
        await built.aclose()


def claim(body: bytes, delivery_id: str | None = None, attempts: int = 0) -> ClaimedDelivery:
    now = datetime.now(UTC)
    return ClaimedDelivery(delivery_id=delivery_id or str(ULID()), ticket_id=str(ULID()),
                           destination=f"callback:{CITY}", kind=DeliveryKind.CALLBACK, idempotency_key="a" * 64,
                           body=body, content_type="application/json; charset=utf-8", headers={}, attempts=attempts,
                           created_at=now, lease_token="t", lease_until=now + timedelta(seconds=60))


STATUS = {"hotlineNo": "KL12345-2024-031500057", "handleStatus": "2", "handleResult": "0",
          "handleOpinion": "经调解，商家退款并赔偿", "syncTime": "2024-03-20 16:00:00"}


def test_the_callback_goes_to_the_url_in_configuration_on_its_own_lane(dev_credentials: dict[str, str],
                                                                      city: City12345, tmp_path: Path) -> None:
    destination = RestAdapter(city_config(tmp_path, city)).callback_destination()

    assert destination is not None
    assert destination.name == f"callback:{CITY}"
    assert str(destination.url) == city.callback_url


async def test_a_callback_is_signed_and_the_partner_verifies_it_with_the_reference_library(
        sender: Sender, city: City12345) -> None:
    body = json.dumps(STATUS, ensure_ascii=False).encode("utf-8")
    delivery = claim(body)

    result = await sender.send(delivery)

    assert result.status_code == 200
    [received] = city.callbacks.received()
    assert received.verified is True
    assert received.body == STATUS
    assert received.webhook_id == f"msg_{delivery.delivery_id}"


async def test_a_retry_carries_the_same_webhook_id_so_the_partner_can_drop_it(sender: Sender, city: City12345) -> None:
    body = json.dumps(STATUS).encode("utf-8")
    first = claim(body)

    await sender.send(first)
    await sender.send(claim(body, delivery_id=first.delivery_id, attempts=1))

    assert [c.duplicate for c in city.callbacks.received()] == [False, True]


async def test_a_callback_signed_with_another_secret_is_refused_by_the_partner(
        dev_credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch, city: City12345, tmp_path: Path) -> None:
    monkeypatch.setenv("PARTNER_CITY12345_CALLBACK_SECRET", NEW_SECRET)
    sender = RestAdapter(city_config(tmp_path, city)).callback_sender()
    assert sender is not None
    try:
        result = await sender.send(claim(b"{}"))
    finally:
        await sender.aclose()

    assert result.status_code == 401
    assert result.error_class is not None
    assert city.callbacks.received() == []
    assert "signature" in city.callbacks.refused()[0].reason.lower()


async def test_during_key_rotation_a_partner_still_holding_the_old_secret_verifies(
        dev_credentials: dict[str, str], monkeypatch: pytest.MonkeyPatch, city: City12345, tmp_path: Path) -> None:
    monkeypatch.setenv("PARTNER_CITY12345_CALLBACK_SECRET", f"{NEW_SECRET},{OLD_SECRET}")
    sender = RestAdapter(city_config(tmp_path, city)).callback_sender()
    assert sender is not None
    try:
        result = await sender.send(claim(b'{"handleStatus": "1"}'))
    finally:
        await sender.aclose()

    assert result.status_code == 200
    assert city.callbacks.received()[0].verified


async def test_a_status_change_reaches_the_partner_in_its_own_codes_through_the_delivery_engine(
        dev_credentials: dict[str, str], city: City12345, tmp_path: Path) -> None:
    config = city_config(tmp_path, city)
    adapter = RestAdapter(config)
    store = SqliteStore(tmp_path / "gateway.db", PHONE_KEY)
    await store.open()
    try:
        intake = build_intake(store, {CITY: config})
        payload = with_fresh_number(load_fixtures(CITY)["01-food-complaint"], ("hotlineNo",))
        outcome = await intake.accept(CITY, payload, raw_body=json.dumps(payload).encode(),
                                      content_type="application/json")
        assert outcome.ticket_id is not None
        ticket = await store.get_ticket(outcome.ticket_id)
        assert ticket is not None and ticket.idempotency_key is not None
        event = StatusEvent(event_id="evt-1", ticket_id=ticket.ticket_id, sequence=1, status="MEDIATED",
                            at=datetime(2024, 3, 20, 16, 0, tzinfo=UTC), org="凯里市市场监督管理局",
                            opinion="经调解，商家退款并赔偿")
        fields = reverse(spec_for(CITY), ticket, event)
        entry = adapter.callback_entry(fields, idempotency_key=f"{ticket.idempotency_key}:{event.event_id}")
        await store.enqueue(ticket.ticket_id, ticket.idempotency_key, [entry])
        destination = adapter.callback_destination()
        sender = adapter.callback_sender()
        assert destination is not None and sender is not None
        engine = DeliveryEngine(store, [destination], senders={destination.name: sender})
        await engine.start()
        try:
            for _ in range(500):
                if city.callbacks.received():
                    break
                await asyncio.sleep(0.02)
        finally:
            await engine.stop()
            await sender.aclose()
    finally:
        await store.close()

    [received] = city.callbacks.received()
    assert received.verified
    assert received.body["hotlineNo"] == payload["hotlineNo"]
    assert received.body["handleStatus"] == "1"  # MEDIATED in the city's codes: 处理中 (已办结 comes with CLOSED)
    assert received.body["handleResult"] == "0"  # 解决
    assert received.headers["idempotency-key"] == f"{ticket.idempotency_key}:evt-1"


async def test_a_partner_that_is_down_answers_a_callback_with_a_retryable_status(
        sender: Sender, city: City12345) -> None:
    city.faults.down = True

    result = await sender.send(claim(b'{"handleStatus": "1"}'))

    assert result.status_code == 503
    assert city.callbacks.received() == []
