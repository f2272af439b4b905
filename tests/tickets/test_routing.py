"""Routing: the handling organisation at the right level, and side deliveries by rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contracts.codesets import HandlerLevel, Status
from contracts.delivery import DeliveryKind
from contracts.status import CaseResult, StatusEvent
from contracts.ticket import Ticket
from contracts.yamldoc import YamlFileError
from gateway.tickets.handlers import OrganisationTable
from gateway.tickets.routing import Router
from tests.sample_tickets import make_ticket

CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.fixture(scope="module")
def router() -> Router:
    return Router.from_files(CONFIG / "routing.yaml", home_region="522600")


def test_a_complaint_goes_to_the_station_covering_the_respondents_street(router: Router) -> None:
    routed = router.assign_handler(make_ticket())  # respondent at 凯里市北京东路8号
    assert routed.routing.handler_level is HandlerLevel.STATION
    assert routed.routing.handler_org_name == "凯里市市场监督管理局大十字市场监督管理所"


def test_a_complaint_outside_any_station_goes_to_the_county_bureau(router: Router) -> None:
    ticket = make_ticket(respondent__operating_region_code="522622", respondent__operating_address="黄平县新州镇")
    routed = router.assign_handler(ticket)
    assert (routed.routing.handler_level, routed.routing.handler_org_code) == (HandlerLevel.COUNTY, "SJJ-522622")


def test_a_report_goes_where_the_conduct_happened_not_where_the_business_is_registered(router: Router) -> None:
    routed = router.assign_handler(make_ticket("report"))  # incident in 镇远县舞阳镇古城
    assert routed.routing.handler_org_code == "SJS-522625-01"


def test_a_region_without_a_county_bureau_falls_back_to_the_city(router: Router) -> None:
    city_and_up = [o for o in router.organisations if o.level in (HandlerLevel.CITY, HandlerLevel.PROVINCE)]
    sparse = Router(router.config, OrganisationTable(organisations=city_and_up), "522600")
    routed = sparse.assign_handler(make_ticket())
    assert (routed.routing.handler_level, routed.routing.handler_org_code) == (HandlerLevel.CITY, "SJJ-522600")


def test_a_business_in_another_province_is_left_to_the_national_platform(router: Router) -> None:
    routed = router.assign_handler(make_ticket(respondent__operating_region_code="110105",
                                               respondent__operating_address="北京市朝阳区"))
    assert routed.routing.handler_level is HandlerLevel.NATION and routed.routing.handler_org_code is None


def test_every_new_ticket_is_forwarded_to_the_national_platform(router: Router) -> None:
    (entry,) = router.intake_outbox(make_ticket())[2]
    assert (entry.destination, entry.kind, entry.priority) == ("national", DeliveryKind.FORWARD, 1)


def test_a_critical_ticket_also_goes_to_emergency_command_ahead_of_normal_traffic(router: Router) -> None:
    entries = router.intake_outbox(make_ticket(classification__urgency="1"))[2]
    assert {(e.destination, e.priority) for e in entries} == {("national", 0), ("emergency", 0)}


def _event(status: Status, result: CaseResult | None = None) -> StatusEvent:
    return StatusEvent(event_id="e", ticket_id="t", sequence=1, at="2024-07-01T10:00:00+08:00", status=status,
                       result=result)


def _at(status: Status, ticket_kind: str = "report", result: CaseResult | None = None) -> Ticket:
    ticket = make_ticket(ticket_kind)
    return ticket.model_copy(update={"lifecycle": ticket.lifecycle.model_copy(
        update={"status": status, "result": result})})


def test_a_filed_report_goes_to_the_enforcement_system_with_the_event(router: Router) -> None:
    (entry,) = router.status_routes(_at(Status.FILED), _event(Status.FILED))[1]
    body = json.loads(entry.body)
    assert entry.destination == "enforcement"
    assert body["event"]["status"] == "FILED" and body["ticket"]["classification"]["business_type"] == "03"


def test_a_filed_complaint_is_not_sent_to_enforcement(router: Router) -> None:
    assert router.status_routes(_at(Status.FILED, "complaint"), _event(Status.FILED))[1] == []


def test_a_closed_case_with_a_penalty_goes_to_credit_and_one_without_does_not(router: Router) -> None:
    penalty = CaseResult(penalty_amount="20000.00", closed_at="2024-07-01T10:00:00+08:00")
    (entry,) = router.status_routes(_at(Status.CLOSED, result=penalty), _event(Status.CLOSED, penalty))[1]
    assert entry.destination == "credit"
    assert router.status_routes(_at(Status.CLOSED, result=CaseResult(text="调解成功")), _event(Status.CLOSED))[1] == []


def test_a_rule_with_an_unknown_status_is_rejected_at_load_naming_file_line_and_key(tmp_path: Path) -> None:
    for name in ("organisations.yaml", "organisations-520000.yaml"):
        (tmp_path / name).write_text((CONFIG / name).read_text(encoding="utf-8"), encoding="utf-8")
    bad = tmp_path / "routing.yaml"
    bad.write_text("rules:\n  - name: x\n    trigger: status\n    when: {status: [FILD]}\n    destination: y\n",
                   encoding="utf-8")
    with pytest.raises(YamlFileError, match=r"routing.yaml:4: rules\[0\]\.when\.status\[0\]"):
        Router.from_files(bad, "522600")
