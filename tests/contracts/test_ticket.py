"""The canonical ticket keeps the national rules and names the field of every broken one."""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from contracts.errors import field_errors
from contracts.status import StatusEvent
from contracts.ticket import Ticket, idempotency_key_of
from tests.sample_tickets import ticket_data

COMPLAINT: dict[str, Any] = ticket_data(complainant__id_type="01", complainant__id_number="11010519491231002x")


def errors_of(data: dict[str, Any]) -> dict[str, str]:
    with pytest.raises(ValidationError) as caught:
        Ticket.model_validate(data)
    return {e.field: e.rule for e in field_errors(caught.value)}


def with_change(path: str, value: Any) -> dict[str, Any]:
    data = copy.deepcopy(COMPLAINT)
    *parents, leaf = path.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
    if value is ...:
        node.pop(leaf, None)
    else:
        node[leaf] = value
    return data


def test_a_complete_complaint_is_accepted_and_normalised() -> None:
    ticket = Ticket.model_validate(COMPLAINT)
    assert ticket.complainant.phone == "+8613800138000"
    assert ticket.complainant.id_number == "11010519491231002X"
    assert ticket.subject.amount == Decimal("299.00")
    assert len(ticket.ticket_id) == 26


def test_the_idempotency_key_is_derived_from_source_system_ticket_number_and_version() -> None:
    ticket = Ticket.model_validate(COMPLAINT)
    assert ticket.idempotency_key == idempotency_key_of("city-12345", "KL20240611000123", "1")
    assert errors_of(with_change("idempotency_key", "0" * 64)) == {
        "idempotency_key": "idempotency_key_matches_source"
    }


@pytest.mark.parametrize("field", ["complainant.name", "complainant.phone", "complainant.address",
                                   "registration.request"])
def test_a_complaint_without_what_article_9_requires_names_the_missing_field(field: str) -> None:
    assert errors_of(with_change(field, ...)) == {field: "complaint_requires"}


def test_an_enquiry_needs_no_complainant_details() -> None:
    data = with_change("classification.business_type", "01")
    data["complainant"] = {}
    del data["registration"]["request"]
    assert Ticket.model_validate(data).complainant.name is None


def test_a_reporters_identity_is_confidential_by_default() -> None:
    ticket = Ticket.model_validate(with_change("classification.business_type", "03"))
    assert ticket.complainant.confidential is True


def test_a_report_cannot_be_marked_not_confidential() -> None:
    data = with_change("classification.business_type", "03")
    data["complainant"]["confidential"] = False
    assert errors_of(data) == {"complainant.confidential": "reporter_confidential"}


def test_content_longer_than_4000_characters_is_rejected() -> None:
    assert errors_of(with_change("registration.content", "投" * 4001)) == {
        "registration.content": "string_too_long"
    }


def test_content_of_exactly_4000_characters_is_accepted() -> None:
    Ticket.model_validate(with_change("registration.content", "投" * 4000))


@pytest.mark.parametrize("amount", ["-1", "12.345"])
def test_money_is_a_non_negative_amount_in_fen(amount: str) -> None:
    assert set(errors_of(with_change("subject.amount", amount))) == {"subject.amount"}


def test_naive_datetimes_are_rejected() -> None:
    assert errors_of(with_change("registration.registered_at", "2024-06-11T09:35:00")) == {
        "registration.registered_at": "timezone_aware"
    }


def test_unknown_fields_are_rejected_by_name() -> None:
    assert errors_of(with_change("complainant.wechat", "abc")) == {"complainant.wechat": "extra_forbidden"}


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [
        ("respondent.uscc", "91350100M000100Y44", "invalid_uscc"),
        ("complainant.id_number", "110105194912310021", "invalid_resident_id"),
        ("complainant.phone", "12345", "invalid_phone"),
        ("respondent.operating_region_code", "522699", "invalid_region_code"),
        ("problem.question_category_code", "999999", "unknown_code"),
        ("classification.business_type", "04", "enum"),
    ],
)
def test_identifiers_and_codes_are_checked_where_they_stand(field: str, value: str, rule: str) -> None:
    assert errors_of(with_change(field, value)) == {field: rule}


def test_a_legacy_registration_number_is_kept_in_its_own_field_not_as_a_uscc() -> None:
    data = with_change("respondent.uscc", ...)
    data["respondent"]["legacy_registration_no"] = "110108000000016"
    assert Ticket.model_validate(data).respondent.uscc is None
    assert errors_of(with_change("respondent.uscc", "110108000000016")) == {"respondent.uscc": "invalid_uscc"}


def test_a_refused_ticket_must_say_why() -> None:
    data = with_change("lifecycle", {"status": "NOT_ACCEPTED"})
    assert errors_of(data) == {"lifecycle.not_accepted_reason": "refusal_has_reason"}


def test_a_not_accepted_status_event_carries_its_reason() -> None:
    with pytest.raises(ValidationError, match="not_accepted_reason"):
        StatusEvent.model_validate({"event_id": "e1", "ticket_id": "t", "sequence": 1,
                                    "at": "2024-06-12T10:00:00+08:00", "status": "NOT_ACCEPTED"})
