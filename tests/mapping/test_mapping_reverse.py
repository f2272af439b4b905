"""The reverse map: what each partner hears back, in its own codes, when a ticket's status changes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from contracts.codesets import NotAcceptedReason, Satisfaction, Status
from contracts.status import CaseResult, FollowUp, StatusEvent
from contracts.ticket import Ticket
from mapping import Mapped, Returned, apply, default_specs, reverse
from mapping.goldens import read_payload
from mapping.loading import FIXTURES_DIR

CST = timezone(timedelta(hours=8))
AT = datetime(2024, 3, 20, 16, 0, tzinfo=CST)


def ticket_of(adapter_id: str, name: str) -> Ticket:
    spec = default_specs()[adapter_id]
    result = apply(spec, read_payload(FIXTURES_DIR / adapter_id / name, spec))
    assert isinstance(result, Mapped)
    return result.ticket


def event(ticket: Ticket, status: Status, **extra: object) -> StatusEvent:
    return StatusEvent(event_id="evt-0001", ticket_id=ticket.ticket_id, sequence=1, at=AT, status=status,
                       org="凯里市市场监督管理局", actor="陈静", **extra)  # type: ignore[arg-type]


def test_a_closed_city_ticket_reports_solved_with_the_satisfaction_in_city_codes() -> None:
    ticket = ticket_of("city-12345-rest", "01-food-complaint.json")
    closed = event(
        ticket, Status.CLOSED, opinion="经调解，商家退款13.80元并赔偿500元。",
        result=CaseResult(recovered_amount=Decimal("513.80"), closed_at=AT),
        follow_up=FollowUp(visited_at=AT, satisfaction=Satisfaction.SATISFIED),
    )
    assert reverse(default_specs()["city-12345-rest"], ticket, closed) == {
        "handleStatus": "2",
        "hotlineNo": "KL12345-2024-031500057",
        "platformNo": "QDN-GZ-2024-0315-0057",
        "handleResult": "0",
        "handleOpinion": "经调解，商家退款13.80元并赔偿500元。",
        "handleDeptName": "凯里市市场监督管理局",
        "syncTime": "2024-03-20 16:00:00",
        "finishTime": "2024-03-20 16:00:00",
        "recoveredAmount": "513.80",
        "satisfaction": "2",
    }


def test_a_refused_city_ticket_reports_the_send_back_and_its_reason() -> None:
    ticket = ticket_of("city-12345-rest", "01-food-complaint.json")
    refused = event(ticket, Status.NOT_ACCEPTED, not_accepted_reason=NotAcceptedReason.OVER_THREE_YEARS)
    fields = reverse(default_specs()["city-12345-rest"], ticket, refused)
    assert (fields["handleStatus"], fields["handleResult"], fields["returnReason"]) == ("3", "3", "超过三年")
    assert "finishTime" not in fields


def test_a_return_to_sender_becomes_a_provincial_send_back() -> None:
    reason = "12345诉求目的“建议”不属于市场监管投诉举报，退回12345"
    returned = Returned(NotAcceptedReason.NOT_MARKET_SUPERVISION, reason, "GZ12345-20240321-000318")
    assert reverse(default_specs()["province-12345-soap"], returned, at=AT) == {
        "replytype": "退单",
        "infoid": "GZ12345-20240321-000318",
        "replytime": "2024-03-20 16:00:00",
        "replycontent": reason,
        "backreason": "不属于市场监督管理部门职责",
        "isend": "0",
    }


def test_a_case_outcome_goes_back_to_enforcement_with_its_penalty() -> None:
    ticket = ticket_of("enforcement-case", "02-case-filed-with-penalty.json")
    fields = reverse(default_specs()["enforcement-case"], ticket)
    assert fields["status_code"] == "40"
    assert fields["status_name"] == "已立案"
    assert fields["result"] == {"penalty": "50000.00", "confiscation": "3260", "case_value": "3260.00"}


def test_a_closed_credit_clue_reports_the_penalty_for_the_credit_record() -> None:
    ticket = ticket_of("credit-supervision", "01-serious-violation-clue.json")
    closed = event(ticket, Status.CLOSED, result=CaseResult(penalty_amount=Decimal("20000"), closed_at=AT))
    fields = reverse(default_specs()["credit-supervision"], ticket, closed)
    assert (fields["STATE"], fields["PUNISHAMOUNT"], fields["CLOSEDATE"]) == ("3", "20000", "20240320")


def test_an_extension_reaches_the_legacy_system_as_its_own_code() -> None:
    ticket = ticket_of("legacy-registration", "01-12365-quality-complaint.json")
    fields = reverse(default_specs()["legacy-registration"], ticket, event(ticket, Status.EXTENDED, opinion="需检测"))
    assert (fields["dqzt"], fields["djbh"], fields["clyj"]) == ("09", "5226222024031500021", "需检测")


@pytest.mark.parametrize("adapter_id", sorted(default_specs()))
@pytest.mark.parametrize("status", list(Status))
def test_every_partner_hears_every_national_status(adapter_id: str, status: Status) -> None:
    spec = default_specs()[adapter_id]
    assert spec.reverse is not None
    ticket = ticket_of("city-12345-rest", "01-food-complaint.json")
    reason = {"not_accepted_reason": NotAcceptedReason.OTHER} if status is Status.NOT_ACCEPTED else {}
    fields = reverse(spec, ticket, event(ticket, status, **reason))
    target = spec.reverse.status_keys[0]
    assert fields[target] == spec.reverse.status_codes[status]
