"""Routing rules through a live gateway: a partner pushes, the shipped rules route by what the ticket says and
what the credit look-up found, the side systems receive it, and the ticket shows each route's rule and evidence."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.ops.dashboard import SESSION_COOKIE
from simulators.credit.app import CreditEntity
from simulators.peer import Delivered, load_fixtures, with_fresh_number
from tests.e2e.e2e_support import VIEWER_TOKEN, World, running_world, wait_for

CITY = "city-12345-rest"
UNLISTED_USCC = "91350100M000100Y43"  # the credit system knows nothing against it
LISTED_USCC = "91522601MA6KQ7TX21"  # put on the 严重违法失信名单 by the credit test
ABNORMAL_USCC = "91522601MA6KQ8YC1A"  # put on the 经营异常名录 by its test (a USCC of its own: look-ups are cached)
CITY_TICKET = load_fixtures(CITY)["01-food-complaint"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_world(tmp_path_factory.mktemp("routing")) as running:
        yield running


def city_ticket(uscc: str = UNLISTED_USCC, **changes: Any) -> dict[str, Any]:
    payload = with_fresh_number(CITY_TICKET, ("hotlineNo",))
    payload["respondent"] = {**payload["respondent"], "creditCode": uscc}
    payload.update(changes)
    return payload


def push(world: World, payload: dict[str, Any]) -> str:
    pushed = world.city.push(payload)
    assert pushed.status == 202, pushed.body
    ticket_id: str = pushed.body["ticket_id"]
    return ticket_id


def received(inbox_items: Any, ticket_id: str) -> Delivered | None:
    return next((item for item in inbox_items() if item.body["ticket"]["ticket_id"] == ticket_id), None)


def routes_of(world: World, ticket_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = world.ticket(ticket_id)["ticket"]["routing"]["routes"]
    return found


def test_a_mass_food_poisoning_without_the_critical_code_reaches_emergency_command_urgently(world: World) -> None:
    payload = city_ticket(urgentLevel="4", appealTitle="学校食堂疑似群体性食物中毒",
                          appealContent="凯里市某中学食堂今日午餐后，40多人陆续出现呕吐、腹泻，疑似群体性食物中毒，"
                                        "已送医院救治，请尽快处理。")
    ticket_id = push(world, payload)

    item = wait_for("the emergency system to receive the ticket",
                    lambda: received(world.emergency.tickets.items, ticket_id), 15)
    assert item.body["route"]["rule_id"] == "emergency-mass-incident" and item.body["route"]["urgent"] is True
    (route,) = routes_of(world, ticket_id)
    assert (route["destination"], route["rule_id"], route["trigger"], route["urgent"]) == (
        "emergency", "emergency-mass-incident", "intake", True)
    assert route["evidence"] == [{"field": "registration.title", "matched": "群体性"}]
    ticket = world.ticket(ticket_id)["ticket"]
    assert ticket["classification"]["urgency"] == "4"  # the partner's code stays what it sent
    assert received(world.credit.cases.items, ticket_id) is None


def test_food_poisoning_of_thirty_odd_people_reaches_emergency_with_the_head_count_as_evidence(world: World) -> None:
    payload = city_ticket(urgentLevel="3", appealTitle="婚宴后多人不适",
                          appealContent="昨晚在某酒楼参加婚宴的三十余人出现上吐下泻，怀疑食物中毒。")
    ticket_id = push(world, payload)

    wait_for("the emergency system to receive the ticket", lambda: received(world.emergency.tickets.items, ticket_id),
             15)
    (route,) = routes_of(world, ticket_id)
    assert route["rule_id"] == "emergency-food-poisoning"
    assert route["evidence"] == [{"field": "registration.content", "matched": "食物中毒"},
                                 {"field": "registration.content", "matched": "三十余人"}]


def test_a_food_poisoning_with_a_death_reaches_emergency_command_urgently_however_few_were_ill(world: World) -> None:
    payload = city_ticket(urgentLevel="3", appealTitle="家人在饭店就餐后食物中毒",
                          appealContent="我父母和弟弟昨天在凯里市某饭店吃了野生菌火锅后食物中毒，父亲经抢救无效死亡，"
                                        "母亲和弟弟仍在住院。")
    ticket_id = push(world, payload)

    item = wait_for("the emergency system to receive the ticket",
                    lambda: received(world.emergency.tickets.items, ticket_id), 15)
    assert item.body["route"]["rule_id"] == "emergency-poisoning-death" and item.body["route"]["urgent"] is True
    (route,) = routes_of(world, ticket_id)
    assert (route["destination"], route["rule_id"], route["trigger"], route["urgent"]) == (
        "emergency", "emergency-poisoning-death", "intake", True)
    # The pattern's match in the normalised content (the full-width comma is a half-width one there).
    assert route["evidence"] == [{"field": "registration.content", "matched": "中毒,父亲经抢救无效死亡"}]


def test_a_respondent_on_the_serious_violation_list_is_copied_to_credit_supervision(world: World) -> None:
    world.credit.entities[LISTED_USCC] = CreditEntity(
        uscc=LISTED_USCC, name="凯里市某火锅店", lists=[{"LISTTYPE": "严重违法失信名单", "INDATE": "2024-01-02"}])
    ticket_id = push(world, city_ticket(LISTED_USCC))
    item = wait_for("the credit system to receive the ticket", lambda: received(world.credit.cases.items, ticket_id),
                    15)
    assert item.body["ticket"]["respondent"]["credit_flags"] == ["严重违法失信"]
    (route,) = routes_of(world, ticket_id)
    assert (route["destination"], route["rule_id"], route["urgent"]) == ("credit", "credit-listed-respondent", False)
    assert route["evidence"] == [{"field": "respondent.credit_flags", "matched": "严重违法失信"}]
    assert received(world.emergency.tickets.items, ticket_id) is None


def test_a_respondent_on_the_abnormal_operations_list_is_copied_to_credit_supervision(world: World) -> None:
    world.credit.entities[ABNORMAL_USCC] = CreditEntity(
        uscc=ABNORMAL_USCC, name="凯里市某副食店", lists=[{"LISTTYPE": "经营异常名录", "INDATE": "2024-05-20"}])
    ticket_id = push(world, city_ticket(ABNORMAL_USCC))
    item = wait_for("the credit system to receive the ticket", lambda: received(world.credit.cases.items, ticket_id),
                    15)
    assert item.body["ticket"]["respondent"]["credit_flags"] == ["经营异常"]
    (route,) = routes_of(world, ticket_id)
    assert (route["destination"], route["rule_id"], route["urgent"]) == ("credit", "credit-listed-respondent", False)
    assert route["evidence"] == [{"field": "respondent.credit_flags", "matched": "经营异常"}]
    assert received(world.emergency.tickets.items, ticket_id) is None


def test_a_credit_repair_request_is_routed_to_credit_supervision_and_forwarded_as_usual(world: World) -> None:
    payload = city_ticket(appealTypeCode="03", appealTypeName="咨询", appealTitle="咨询信用修复",
                          appealContent="我店去年未按时报送年度报告被列入经营异常名录，现已补报，咨询如何申请信用修复。")
    ticket_id = push(world, payload)

    wait_for("the credit system to receive the ticket", lambda: received(world.credit.cases.items, ticket_id), 15)
    (route,) = routes_of(world, ticket_id)
    assert (route["rule_id"], route["evidence"]) == (
        "credit-repair", [{"field": "registration.title", "matched": "信用修复"}])
    wait_for("the national forward", lambda: [d for d in world.deliveries(ticket_id=ticket_id)
                                              if d["destination"] == "national" and d["state"] == "delivered"], 15)


def test_the_dashboard_ticket_page_shows_each_routes_rule_and_evidence(world: World) -> None:
    payload = city_ticket(appealContent="某健身房突然关门，上百名会员聚集在门口讨说法，要求退还预付卡余额。")
    ticket_id = push(world, payload)
    wait_for("the emergency system to receive the ticket", lambda: received(world.emergency.tickets.items, ticket_id),
             15)

    with httpx.Client(base_url=world.gateway_url, cookies={SESSION_COOKIE: VIEWER_TOKEN}, trust_env=False) as client:
        page = client.get(f"/ops/tickets/{ticket_id}")
    assert page.status_code == 200
    text = html.unescape(page.text)
    assert 'data-destination="emergency" data-rule="emergency-gathering"' in text
    assert "registration.content</span>：聚集" in text and "registration.content</span>：上百名" in text


def test_the_ops_api_shows_routes_to_a_viewer_with_personal_data_masked(world: World) -> None:
    payload = city_ticket(appealContent="王小红反映：30多人在某餐馆就餐后食物中毒，联系电话13985012345。")
    ticket_id = push(world, payload)
    detail = world.ticket(ticket_id)
    assert detail["masked"] is True
    (route,) = detail["ticket"]["routing"]["routes"]
    assert route["rule_id"] == "emergency-food-poisoning"
    assert {"field": "registration.content", "matched": "30多人"} in route["evidence"]
    assert "13985012345" not in str(detail)
