"""Routing rules that see the ticket: conditions over text, credit flags, codes, amounts and head counts, each
match recorded on the ticket with its evidence; the shipped rules; a broken rules file named at its line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from contracts.codesets import Status
from contracts.status import CaseResult, StatusEvent
from contracts.ticket import Evidence, Ticket
from contracts.yamldoc import YamlFileError
from gateway.config import load_settings
from gateway.runtime import load_components
from gateway.tickets.route_rules import Condition, TicketText
from gateway.tickets.routing import Router
from tests.sample_tickets import make_ticket

CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture(scope="module")
def router() -> Router:
    return Router.from_files(CONFIG / "routing.yaml", home_region="522600")


def copy_organisations(folder: Path) -> None:
    """The organisation files routing.yaml names: the hand-configured one and the generated table it includes."""
    for name in ("organisations.yaml", "organisations-520000.yaml"):
        shutil.copy(CONFIG / name, folder / name)


def saying(content: str, **changes: Any) -> Ticket:
    return make_ticket(registration__content=content, **changes)


def evidence_of(condition: dict[str, Any], ticket: Ticket) -> list[tuple[str, str]] | None:
    found = Condition.model_validate(condition).evidence(ticket, TicketText(ticket))
    return None if found is None else [(e.field, e.matched) for e in found]


# -- conditions -------------------------------------------------------------------------------------------------
def test_a_phrase_matches_in_normalised_text_and_names_the_field_it_was_found_in() -> None:
    ticket = saying("顧客反映飯館食物中毒", registration__title="ＡＢＣ饭馆")  # traditional and full-width forms
    assert evidence_of({"text": {"any_of": ["食物中毒"]}}, ticket) == [("registration.content", "食物中毒")]
    assert evidence_of({"text": {"any_of": ["abc饭馆"]}}, ticket) == [("registration.title", "abc饭馆")]


def test_an_excluded_phrase_anywhere_in_the_ticket_stops_the_match() -> None:
    ticket = saying("红绿灯坏了，路口常有食品货车", registration__request="请交通部门修理")
    assert evidence_of({"text": {"any_of": ["食品"], "none_of": ["交通"]}}, ticket) is None


def test_a_pattern_reports_what_it_matched() -> None:
    ticket = saying("就餐后中毒，一人抢救无效身亡")
    assert evidence_of({"text": {"patterns": ["中毒.{0,40}(死亡|身亡|抢救无效)"]}}, ticket) == [
        ("registration.content", "中毒,一人抢救无效身亡")]  # normalised: half-width comma


def test_keywords_are_part_of_the_text() -> None:
    ticket = make_ticket(registration__keywords=["预付卡", "跑路"])
    assert evidence_of({"text": {"any_of": ["跑路"]}}, ticket) == [("registration.keywords", "跑路")]


def test_a_credit_flag_matches_when_it_contains_the_configured_word() -> None:
    ticket = make_ticket(respondent__credit_flags=["严重违法失信", "经营异常"])
    assert evidence_of({"credit_flags": ["失信"]}, ticket) == [("respondent.credit_flags", "严重违法失信")]
    assert evidence_of({"credit_flags": ["失信", "经营异常"]}, ticket) == [
        ("respondent.credit_flags", "严重违法失信"), ("respondent.credit_flags", "经营异常")]
    assert evidence_of({"credit_flags": ["失信"]}, make_ticket()) is None


def test_code_prefixes_select_a_code_and_its_children() -> None:
    ticket = make_ticket(respondent__industry_code="144", respondent__entity_type_code="0201",
                         problem__question_category_code="010101", subject__object_category_code="010101")
    assert evidence_of({"industry_prefix": ["14"]}, ticket) == [("respondent.industry_code", "144")]
    assert evidence_of({"respondent_type": ["02"]}, ticket) == [("respondent.entity_type_code", "0201")]
    assert evidence_of({"question_prefix": ["0101"]}, ticket) == [("problem.question_category_code", "010101")]
    assert evidence_of({"object_prefix": ["0102"]}, ticket) is None
    assert evidence_of({"industry_prefix": ["14"]}, make_ticket()) is None  # no code: no match


def test_an_amount_matches_from_the_threshold_up() -> None:
    assert evidence_of({"amount_at_least": "299"}, make_ticket()) == [("subject.amount", "299.00")]
    assert evidence_of({"amount_at_least": "299.01"}, make_ticket()) is None


def test_people_in_the_text_match_from_the_threshold_up() -> None:
    assert evidence_of({"people_at_least": 30}, saying("三十余人就餐后腹泻")) == [("registration.content", "三十余人")]
    assert evidence_of({"people_at_least": 30}, saying("一家3人就餐后腹泻")) is None


def test_todays_fields_still_match_and_leave_evidence() -> None:
    ticket = make_ticket("report", classification__urgency="1")
    assert evidence_of({"business_type": ["03"], "urgency": ["1"], "region_prefix": "5226"}, ticket) == [
        ("classification.business_type", "03"), ("classification.urgency", "1"),
        ("respondent.operating_region_code", "522601")]


def test_every_field_must_match() -> None:
    assert evidence_of({"text": {"any_of": ["电饭煲"]}, "people_at_least": 30}, make_ticket()) is None


# -- the shipped rules --------------------------------------------------------------------------------------------
def routes(router: Router, ticket: Ticket) -> list[tuple[str, str, int]]:
    routed, entries = router.intake_routes(ticket)
    priorities = {e.destination: e.priority for e in entries}
    assert [r.destination for r in routed.routing.routes] == [e.destination for e in entries]
    return [(r.destination, r.rule_id, priorities[r.destination]) for r in routed.routing.routes]


def test_a_mass_food_poisoning_without_the_critical_code_goes_to_emergency_ahead_of_normal_traffic(
        router: Router) -> None:
    ticket = saying("学校食堂午餐后40多人出现呕吐腹泻，疑似食物中毒", classification__urgency="4")
    routed, entries = router.intake_routes(ticket)
    (decision,) = routed.routing.routes
    assert (decision.destination, decision.rule_id, decision.trigger, decision.urgent) == (
        "emergency", "emergency-food-poisoning", "intake", True)
    assert decision.evidence == [Evidence(field="registration.content", matched="食物中毒"),
                                 Evidence(field="registration.content", matched="40多人")]
    assert [(e.destination, e.priority) for e in entries] == [("emergency", 0)]
    assert router.forward_entry(routed, b"{}").priority == 0  # the national platform hears of it first too
    body = json.loads(entries[0].body)
    assert body["route"]["rule_id"] == "emergency-food-poisoning" and body["ticket"]["routing"]["routes"]


def test_a_few_people_ill_is_not_an_emergency(router: Router) -> None:
    assert routes(router, saying("一家3口在饭店就餐后出现呕吐腹泻")) == []


def test_a_group_incident_goes_to_emergency_whatever_the_number(router: Router) -> None:
    assert routes(router, saying("疑似群体性食物中毒")) == [("emergency", "emergency-mass-incident", 0)]


def test_a_hundred_members_gathering_at_a_closed_gym_go_to_emergency(router: Router) -> None:
    assert routes(router, saying("健身房突然关门，上百名会员聚集在门口讨说法")) == [
        ("emergency", "emergency-gathering", 0)]


def test_a_critical_mass_incident_reaches_emergency_once_by_the_first_rule(router: Router) -> None:
    assert routes(router, saying("群体性事件", classification__urgency="1")) == [
        ("emergency", "emergency-critical", 0)]


def test_a_respondent_on_a_credit_list_is_copied_to_credit_supervision(router: Router) -> None:
    ticket = make_ticket(respondent__credit_flags=["严重违法失信"])
    assert routes(router, ticket) == [("credit", "credit-listed-respondent", 1)]


def test_a_credit_repair_request_is_routed_to_credit_supervision_by_default(router: Router) -> None:
    ticket = make_ticket("enquiry", registration__content="我公司已补报年报，想咨询如何移出经营异常名录")
    assert router.returned(ticket) is None
    assert routes(router, ticket) == [("credit", "credit-repair", 1)]


def test_an_ordinary_complaint_goes_nowhere_but_the_national_platform(router: Router) -> None:
    assert routes(router, make_ticket()) == []
    assert [e.destination for e in router.intake_outbox(make_ticket())[2]] == ["national"]


def test_a_status_route_is_recorded_with_the_status_trigger(router: Router) -> None:
    ticket = make_ticket("report")
    ticket = ticket.model_copy(update={"lifecycle": ticket.lifecycle.model_copy(update={"status": Status.FILED})})
    event = StatusEvent(event_id="e", ticket_id="t", sequence=1, at="2024-07-01T10:00:00+08:00", status=Status.FILED)
    routed, (entry,) = router.status_routes(ticket, event)
    (decision,) = routed.routing.routes
    assert (decision.destination, decision.rule_id, decision.trigger) == (
        "enforcement", "enforcement-filed-report", "status")
    assert [(e.field, e.matched) for e in decision.evidence] == [
        ("classification.business_type", "03"), ("lifecycle.status", "FILED")]
    assert entry.destination == "enforcement"


def test_routes_of_later_status_events_are_added_to_earlier_ones(router: Router) -> None:
    ticket, _ = router.intake_routes(make_ticket(respondent__credit_flags=["经营异常"]))
    result = CaseResult(penalty_amount="5000.00", closed_at="2024-07-01T10:00:00+08:00")
    closed = ticket.model_copy(update={"lifecycle": ticket.lifecycle.model_copy(
        update={"status": Status.CLOSED, "result": result})})
    event = StatusEvent(event_id="e", ticket_id="t", sequence=2, at="2024-07-01T10:00:00+08:00",
                        status=Status.CLOSED, result=result)
    routed, (closing,) = router.status_routes(closed, event)
    (listed,) = router.intake_routes(make_ticket(respondent__credit_flags=["经营异常"]))[1]
    assert closing.idempotency_key != listed.idempotency_key  # credit must not drop the second as a resend
    assert [(r.rule_id, r.trigger) for r in routed.routing.routes] == [
        ("credit-listed-respondent", "intake"), ("credit-closed-with-penalty", "status")]
    Ticket.model_validate(routed.model_dump())  # still a valid ticket


def test_a_credit_repair_request_is_returned_when_the_configuration_says_return(tmp_path: Path) -> None:
    routing = tmp_path / "routing.yaml"
    copy_organisations(tmp_path)
    routing.write_text((CONFIG / "routing.yaml").read_text(encoding="utf-8").replace(
        "action: route                         # or: return", "action: return"), encoding="utf-8")
    router = Router.from_files(routing, "522600")
    sent_back = router.returned(make_ticket("enquiry", registration__content="申请信用修复"))
    assert sent_back is not None
    assert (sent_back.rule_id, sent_back.returned.reason_code) == ("credit-repair", "7")
    assert "信用修复" in sent_back.returned.reason
    assert sent_back.evidence == (Evidence(field="registration.content", matched="信用修复"),)
    assert routes(router, make_ticket("enquiry", registration__content="申请信用修复")) == []


# -- a broken rules file ------------------------------------------------------------------------------------------
def broken(tmp_path: Path, rule: str) -> Path:
    copy_organisations(tmp_path)
    routing = tmp_path / "routing.yaml"
    routing.write_text("national_destination: national\nrules:\n"
                       "  - id: fine\n    name: fine\n    trigger: intake\n    when: {urgency: ['1']}\n"
                       "    destination: emergency\n" + rule, encoding="utf-8")
    return routing


def load_error(routing: Path) -> str:
    with pytest.raises(YamlFileError) as caught:
        Router.from_files(routing, "522600")
    return str(caught.value)


def test_an_unknown_condition_is_named_at_its_line(tmp_path: Path) -> None:
    routing = broken(tmp_path, "  - name: x\n    trigger: intake\n    when:\n      people_over: 30\n"
                               "    destination: emergency\n")
    assert f"{routing}:11: rules[1].when.people_over: Extra inputs are not permitted" in load_error(routing)


def test_an_invalid_regular_expression_is_named_at_its_line(tmp_path: Path) -> None:
    routing = broken(tmp_path, "  - name: x\n    trigger: intake\n    when:\n      text: {patterns: ['中毒(']}\n"
                               "    destination: emergency\n")
    error = load_error(routing)
    assert f"{routing}:11: rules[1].when.text.patterns" in error and "not a valid regular expression" in error


@pytest.mark.parametrize("phrases", ["{patterns: ['.']}", "{patterns: ['\\S|\\s']}", "{any_of: ['   ']}"])
def test_a_phrase_set_that_matches_everything_is_refused_at_its_line(tmp_path: Path, phrases: str) -> None:
    routing = broken(tmp_path, f"  - name: x\n    trigger: intake\n    when:\n      text: {phrases}\n"
                               "    destination: emergency\n")
    error = load_error(routing)
    assert f"{routing}:11: rules[1].when.text" in error and "match" in error


def test_an_unknown_code_prefix_is_named_at_its_line(tmp_path: Path) -> None:
    routing = broken(tmp_path, "  - name: x\n    trigger: intake\n    when: {industry_prefix: ['99']}\n"
                               "    destination: emergency\n")
    assert f"{routing}:10: rules[1].when.industry_prefix[0]" in load_error(routing)


def test_a_return_on_a_status_trigger_is_refused(tmp_path: Path) -> None:
    routing = broken(tmp_path, "  - name: x\n    trigger: status\n    destination: credit\n    action: return\n"
                               "    return_reason: {code: '7', reason: 不属于}\n")
    assert "action return needs trigger intake" in load_error(routing)


def test_two_rules_with_one_id_are_refused(tmp_path: Path) -> None:
    routing = broken(tmp_path, "  - id: fine\n    name: y\n    trigger: intake\n    destination: credit\n")
    assert "rule ids must be unique" in load_error(routing)


def test_an_unknown_lane_is_named_at_its_line_when_the_gateway_loads(tmp_path: Path) -> None:
    config = tmp_path / "config"
    shutil.copytree(CONFIG, config)
    routing = config / "routing.yaml"
    text = routing.read_text(encoding="utf-8").replace("destination: credit\n\n  # 信用修复",
                                                       "destination: credt\n\n  # 信用修复")
    routing.write_text(text, encoding="utf-8")
    line = text.splitlines().index("    destination: credt") + 1
    with pytest.raises(YamlFileError) as caught:
        load_components(load_settings(config / "gateway.yaml"))
    assert f"{routing}:{line}: rules[5].destination: unknown lane 'credt'" in str(caught.value)
    assert "delivery.yaml defines callback:city-12345-rest" in str(caught.value)
