"""Golden tests: every fixture of the six partner systems maps to exactly what its golden file says."""

from __future__ import annotations

from decimal import Decimal

import pytest

from contracts.codesets import NotAcceptedReason, Urgency
from mapping import Mapped, Rejected, Returned, apply, default_specs
from mapping.goldens import Fixture, check_fixture, fixtures_of, read_payload
from mapping.loading import FIXTURES_DIR
from mapping.spec import MappingSpec

PARTNERS = [
    "city-12345-rest",
    "credit-supervision",
    "emergency-command",
    "enforcement-case",
    "legacy-registration",
    "province-12345-soap",
]
ALL_FIXTURES = [(adapter_id, fixture) for adapter_id in PARTNERS for fixture in fixtures_of(adapter_id)]


def _spec(adapter_id: str) -> MappingSpec:
    return default_specs()[adapter_id]


def _map(adapter_id: str, name: str) -> Mapped | Rejected | Returned:
    spec = _spec(adapter_id)
    return apply(spec, read_payload(FIXTURES_DIR / adapter_id / name, spec))


def _mapped(adapter_id: str, name: str) -> Mapped:
    result = _map(adapter_id, name)
    assert isinstance(result, Mapped), result
    return result


def test_every_partner_system_has_a_spec() -> None:
    assert sorted(default_specs()) == PARTNERS


@pytest.mark.parametrize(("adapter_id", "fixture"), ALL_FIXTURES, ids=[f"{a}/{f.stem}" for a, f in ALL_FIXTURES])
def test_fixture_maps_to_its_golden(adapter_id: str, fixture: Fixture) -> None:
    assert check_fixture(_spec(adapter_id), fixture).problems == ()


@pytest.mark.parametrize("adapter_id", PARTNERS)
def test_each_partner_has_good_and_bad_fixtures(adapter_id: str) -> None:
    kinds = [check_fixture(_spec(adapter_id), fixture).kind for fixture in fixtures_of(adapter_id)]
    assert len(kinds) >= 6
    assert kinds.count("ok") >= 3
    assert "errors" in kinds


# The edge cases the goldens cover, stated one by one.


def test_a_legacy_15_digit_id_number_is_upgraded_to_18() -> None:
    ticket = _mapped("legacy-registration", "01-12365-quality-complaint.json").ticket
    assert ticket.complainant.id_number == "522622196805150324"


def test_wu_in_the_credit_code_field_means_the_respondent_has_no_code() -> None:
    respondent = _mapped("legacy-registration", "01-12365-quality-complaint.json").ticket.respondent
    assert (respondent.uscc, respondent.legacy_registration_no, respondent.legacy_org_code) == (None, None, None)


def test_an_old_15_digit_registration_number_is_kept_apart_from_the_uscc() -> None:
    respondent = _mapped("legacy-registration", "02-12331-food-report.json").ticket.respondent
    assert respondent.uscc is None
    assert respondent.legacy_registration_no == "522601000012348"


def test_an_amount_written_with_yuan_is_money() -> None:
    assert _mapped("legacy-registration", "01-12365-quality-complaint.json").ticket.subject.amount == Decimal("1200.5")


def test_a_gbk_soap_envelope_keeps_its_chinese_text() -> None:
    ticket = _mapped("province-12345-soap", "07-gbk-envelope.xml").ticket
    assert ticket.complainant.name == "邰秀兰"
    assert "鑫、淼、犇" in ticket.registration.content


def test_a_gbk_json_body_is_decoded() -> None:
    assert _mapped("legacy-registration", "07-gbk-infant-formula.gbk.json").ticket.complainant.name == "龙淼鑫"


def test_a_12345_suggestion_is_returned_to_sender_with_its_ticket_number() -> None:
    result = _map("province-12345-soap", "04-suggestion-returned.json")
    assert isinstance(result, Returned)
    assert result.reason_code is NotAcceptedReason.NOT_MARKET_SUPERVISION
    assert result.source_ticket_no == "GZ12345-20240321-000318"
    assert "建议" in result.reason


def test_a_level_i_incident_is_critical_and_its_casualties_are_in_the_content() -> None:
    ticket = _mapped("emergency-command", "01-level-i-food-poisoning.json").ticket
    assert ticket.classification.urgency is Urgency.CRITICAL
    assert "伤亡情况：死亡0人，受伤23人，失踪0人" in ticket.registration.content


def test_content_over_4000_characters_is_cut_with_a_warning() -> None:
    result = _mapped("city-12345-rest", "05-long-content-and-amount.json")
    assert len(result.ticket.registration.content) == 4000
    assert [(w.field, w.rule, w.source_path) for w in result.warnings] == [
        ("registration.content", "truncated", "appealContent")
    ]


def test_a_complaint_without_a_phone_names_the_partner_field() -> None:
    result = _map("city-12345-rest", "06-complaint-missing-phone.json")
    assert isinstance(result, Rejected)
    assert [(e.field, e.rule, e.source_path) for e in result.errors] == [
        ("complainant.phone", "complaint_requires", "contactPhone")
    ]


def test_an_error_names_the_offending_value() -> None:
    result = _map("legacy-registration", "06-bad-id-and-credit-code.json")
    assert isinstance(result, Rejected)
    assert {(e.field, e.rule, e.value) for e in result.errors} == {
        ("complainant.id_number", "invalid_resident_id", "522627681345032"),
        ("respondent.uscc", "invalid_uscc", "91522627MA6H0TR51X"),
        ("subject.amount", "invalid_money", "三百元"),
    }
