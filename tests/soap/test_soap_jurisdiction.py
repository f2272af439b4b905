"""The jurisdiction screen over SOAP: a held order answers status `review` with its ticket id, a matter of
another authority answers `returned` with the reason naming it — each in SubmitTicketResponse's own shape."""

from __future__ import annotations

from typing import Any

import pytest
from zeep.wsse.username import UsernameToken

from gateway.store.base import DeliveryFilter
from gateway.store.sqlite import SqliteStore
from gateway.tickets.deadlines import RuleBook, WorkingDayCalendar
from gateway.tickets.intake import IntakeService
from gateway.tickets.jurisdiction import JurisdictionRules
from gateway.tickets.routing import Router
from tests.soap.conftest import ADAPTER_ID, PARTNER_PASSWORD, PARTNER_USER, REPO, Gateway, fixture_order, zeep_client


@pytest.fixture
def intake(store: SqliteStore, spec_and_router: tuple[Any, Router, RuleBook, WorkingDayCalendar]) -> IntakeService:
    spec, router, rules, calendar = spec_and_router
    return IntakeService(store, {ADAPTER_ID: spec}, router, rules, calendar,
                         jurisdiction=JurisdictionRules.from_file(REPO / "config" / "jurisdiction.yaml"))


def order(title: str, content: str, questiontype: str = "市场监管_消费维权_服务质量") -> dict[str, Any]:
    found = fixture_order("01")  # 市场监管_… in questiontype: the spec's own 退单 rule lets it through
    found.update(infoid=f"GZ-JUR-{abs(hash((title, questiontype))) % 10**8}", title=title, content=content,
                 request="请依法处理", questiontype=questiontype)
    return found


async def submit(gateway: Gateway, work_order: dict[str, Any]) -> Any:
    call = await zeep_client(gateway.wsdl_url(), UsernameToken(PARTNER_USER, PARTNER_PASSWORD, use_digest=True))
    try:
        return await call.proxy.SubmitTicket(order=work_order)
    finally:
        await call.aclose()


async def test_an_order_held_for_review_answers_review_with_its_ticket_id(gateway: Gateway) -> None:
    result = await submit(gateway, order("医美注射后出现结节",
                                         "在凯里某医疗美容诊所注射玻尿酸后面部出现结节，要求赔偿。"))

    assert result.status == "review"
    stored = await gateway.store.get_ticket(result.ticketId)
    assert stored is not None and stored.routing.jurisdiction is not None
    assert stored.routing.jurisdiction.rule_id == "review.medical-beauty"
    assert await gateway.store.list_deliveries(DeliveryFilter(ticket_id=result.ticketId)) == []  # nothing sent


async def test_an_order_of_another_authority_answers_returned_naming_it(gateway: Gateway) -> None:
    result = await submit(gateway, order("拖欠工资", "在某工地干活三个月，包工头拖欠工资四万元一直不发。"))

    assert result.status == "returned" and result.ticketId is None
    assert result.returnReasonCode == "1"
    assert "人力资源和社会保障部门" in result.returnReason


async def test_a_partner_category_at_odds_with_the_text_is_a_conflict_for_review(gateway: Gateway) -> None:
    # The province filed it under 食品安全_餐饮服务 (its keywords say 餐饮), the caller speaks of wages.
    result = await submit(gateway, order("拖欠工资", "在某饭店打工三个月，老板拖欠工资一直不发。",
                                         questiontype="市场监管_食品安全_餐饮服务"))

    assert result.status == "review"
    stored = await gateway.store.get_ticket(result.ticketId)
    assert stored is not None and stored.routing.jurisdiction is not None
    assert stored.routing.jurisdiction.rule_id == "conflict"
    assert {e.field for e in stored.routing.jurisdiction.evidence} == {"registration.keywords",
                                                                        "registration.title"}
