"""Intake end to end on a real store: stored with its outbox, repeats, quarantine, 退单 told back, canonical."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.loading import load_adapters
from adapters.secrets import credential_variables, ensure_demo_credentials
from contracts.delivery import DeliveryKind, DeliveryState
from gateway.config import load_settings
from gateway.runtime import Runtime
from gateway.store.base import DeliveryFilter
from gateway.store.sqlite import SqliteStore
from gateway.tickets.intake import IntakeService

FIXTURES = Path(__file__).resolve().parents[2] / "mapping" / "fixtures"


def fixture(adapter_id: str, name: str) -> tuple[dict[str, Any], bytes]:
    raw = (FIXTURES / adapter_id / f"{name}.json").read_bytes()
    return json.loads(raw), raw


@pytest.fixture
async def intake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[IntakeService]:
    monkeypatch.setenv("HIG_DATA_DIR", str(tmp_path / "data"))
    # No credit look-up: a credit simulator left running on its demo port would put the fixture's respondent on
    # the 失信 list, and routing would add a credit delivery.
    monkeypatch.setenv("HIG_CREDIT_LOOKUP__URL", "")
    settings = load_settings()
    configs = load_adapters(settings.resolve(settings.adapters_dir))
    for config in configs.values():  # recorded as unset, so the generated credentials go away after the test
        for name, _ in credential_variables(config):
            monkeypatch.delenv(name, raising=False)
    ensure_demo_credentials(settings.resolved_data_dir, configs)
    store = SqliteStore(tmp_path / "gateway.db", b"intake-test-key")
    runtime = Runtime.build(settings, store=store)
    await store.open()
    yield runtime.intake
    await store.close()


async def test_a_mapped_ticket_is_stored_with_its_forward_to_the_national_platform(intake: IntakeService) -> None:
    payload, raw = fixture("city-12345-rest", "01-food-complaint")
    outcome = await intake.accept("city-12345-rest", payload, raw_body=raw, content_type="application/json")
    assert outcome.kind == "created"
    assert outcome.ticket_id is not None
    ticket = await intake.store.get_ticket(outcome.ticket_id)
    assert ticket is not None
    assert ticket.routing.handler_org_code is not None
    assert [d.kind for d in ticket.routing.deadlines] == ["acceptance"]
    assert await intake.store.get_raw_payload(outcome.ticket_id) == (raw, "application/json")
    (forward,) = await intake.store.list_deliveries(DeliveryFilter(ticket_id=outcome.ticket_id))
    assert (forward.destination, forward.kind, forward.state) == ("national", DeliveryKind.FORWARD,
                                                                  DeliveryState.PENDING)


async def test_the_same_ticket_pushed_again_is_a_repeat_with_the_same_id(intake: IntakeService) -> None:
    payload, raw = fixture("city-12345-rest", "01-food-complaint")
    first = await intake.accept("city-12345-rest", payload, raw_body=raw, content_type="application/json")
    again = await intake.accept("city-12345-rest", payload, raw_body=raw, content_type="application/json")
    assert (again.kind, again.ticket_id) == ("repeat", first.ticket_id)


async def test_an_unmappable_ticket_is_quarantined_with_its_raw_payload(intake: IntakeService) -> None:
    payload, raw = fixture("city-12345-rest", "06-complaint-missing-phone")
    outcome = await intake.accept("city-12345-rest", payload, raw_body=raw, content_type="application/json")
    assert outcome.kind == "quarantined"
    assert outcome.quarantine_id is not None
    kept = await intake.store.get_quarantined(outcome.quarantine_id)
    assert kept is not None
    assert kept.body == raw
    assert {e.field for e in kept.errors} == {e.field for e in outcome.errors}


async def test_a_pulled_ticket_outside_market_supervision_is_returned_through_the_callback_lane(
        intake: IntakeService) -> None:
    payload, raw = fixture("province-12345-soap", "04-suggestion-returned")
    outcome = await intake.accept("province-12345-soap", payload, raw_body=raw, content_type="application/json")
    assert outcome.kind == "returned"
    (callback,) = await intake.store.list_deliveries(DeliveryFilter(destination="callback:province-12345-soap"))
    assert callback.kind is DeliveryKind.CALLBACK
    claimed = await intake.store.claim("callback:province-12345-soap", "w", 30)
    fields = json.loads(claimed[0].body)
    assert fields["infoid"] == payload["infoid"]
    assert "退单" in json.dumps(fields, ensure_ascii=False)


async def test_a_canonical_sender_cannot_speak_for_another_adapter(intake: IntakeService) -> None:
    from tests.sample_tickets import ticket_data

    data = ticket_data()
    data["source"]["adapter_id"] = "city-12345-rest"
    outcome = await intake.accept("canonical", data, raw_body=json.dumps(data).encode(),
                                  content_type="application/json")
    assert outcome.kind == "quarantined"
    assert [(e.field, e.rule) for e in outcome.errors] == [("source.adapter_id", "adapter_mismatch")]
