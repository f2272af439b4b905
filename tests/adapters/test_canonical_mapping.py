"""The `canonical` mapping: a ticket already in the national standard is validated and tied to its adapter."""

from __future__ import annotations

from datetime import UTC, datetime

from adapters.canonical import canonical_ticket
from adapters.loading import load_adapters
from mapping.engine import Mapped, Rejected
from tests.adapters.adapter_support import DEMO_ADAPTERS
from tests.sample_tickets import ticket_data

CANONICAL = load_adapters(DEMO_ADAPTERS)["canonical"]


def test_a_valid_national_ticket_maps_to_itself_under_the_receiving_adapter() -> None:
    payload = ticket_data("complaint", no="NAT-1")
    del payload["source"]["adapter_id"]

    result = canonical_ticket(payload, CANONICAL)

    assert isinstance(result, Mapped)
    assert result.ticket.source.adapter_id == "canonical"
    assert result.ticket.source.source_system == payload["source"]["source_system"]
    assert result.ticket.registration.content == payload["registration"]["content"]


def test_the_sender_may_leave_out_source_system_and_received_at() -> None:
    payload = ticket_data("complaint", no="NAT-2")
    payload["source"] = {"source_ticket_no": "NAT-2"}
    now = datetime(2024, 6, 11, 9, 30, tzinfo=UTC)

    result = canonical_ticket(payload, CANONICAL, now=now)

    assert isinstance(result, Mapped)
    assert result.ticket.source.source_system == "canonical"
    assert result.ticket.source.source_received_at == now


def test_a_ticket_claiming_another_adapter_is_refused() -> None:
    # Otherwise its status callbacks would go to that adapter's partner.
    payload = ticket_data("complaint", no="NAT-3")  # names city-12345-rest

    result = canonical_ticket(payload, CANONICAL)

    assert isinstance(result, Rejected)
    assert [(e.field, e.rule) for e in result.errors] == [("source.adapter_id", "adapter_mismatch")]


def test_what_only_the_gateway_decides_cannot_be_sent() -> None:
    payload = ticket_data("complaint", no="NAT-4", lifecycle={"status": "CLOSED"})
    payload["source"]["adapter_id"] = "canonical"
    payload["ticket_id"] = "01HZZZZZZZZZZZZZZZZZZZZZZZ"

    result = canonical_ticket(payload, CANONICAL)

    assert isinstance(result, Rejected)
    assert sorted(e.field for e in result.errors) == ["lifecycle", "ticket_id"]


def test_a_ticket_breaking_the_national_rules_names_each_field_and_its_source_path() -> None:
    payload = ticket_data("complaint", no="NAT-5")
    payload["source"]["adapter_id"] = "canonical"
    del payload["complainant"]["phone"]

    result = canonical_ticket(payload, CANONICAL)

    assert isinstance(result, Rejected)
    assert [(e.field, e.rule, e.source_path) for e in result.errors] == [
        ("complainant.phone", "complaint_requires", "complainant.phone")]


def test_a_payload_that_is_not_an_object_is_refused() -> None:
    assert isinstance(canonical_ticket(["not", "a", "ticket"], CANONICAL), Rejected)
