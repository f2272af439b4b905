"""Cross-line duplicates through a live gateway: the city 12345 pushes a complaint, a former 12315 line pushes the
same matter in the national standard a day later; both are stored and forwarded, both show the link with its score
and reasons, the national platform receives the second naming the first's registration number, and an operator
confirms the link through the API and dismisses it on the dashboard (both audited)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.ops.dashboard import SESSION_COOKIE
from simulators.peer import load_fixtures, with_fresh_number
from tests.e2e.e2e_support import ENVIRONMENT, World, running_world, wait_for
from tests.sample_tickets import ticket_data

CITY = "city-12345-rest"
CITY_TICKET = load_fixtures(CITY)["01-food-complaint"]  # 王小红 13985012345, 惠民生活超市, expired yoghurt
OPERATOR = ENVIRONMENT["HIG_OPS_TOKEN_OPERATOR"]
ADMIN = ENVIRONMENT["HIG_OPS_TOKEN_ADMIN"]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_world(tmp_path_factory.mktemp("links")) as running:
        yield running


def line_12315_ticket(no: str, title: str, content: str, request: str) -> dict[str, Any]:
    """The same consumer's complaint as registered by a former 12315 line, in the national standard."""
    at = "2024-03-16T14:05:00+08:00"
    data = ticket_data("complaint", no, **{
        "source__source_system": "line-12315", "source__source_received_at": at,
        "registration__registered_at": at, "registration__title": title, "registration__content": content,
        "registration__request": request, "complainant__name": "王小红", "complainant__phone": "13985012345",
        "respondent__name": "凯里市惠民生活超市有限公司", "respondent__uscc": "91522601MA6DL4KQ33",
        "respondent__operating_region_code": "522601"})
    del data["source"]["adapter_id"]
    return data


def push_canonical(world: World, payload: dict[str, Any]) -> str:
    response = world.client.post(f"{world.gateway_url}/api/v1/inbound/canonical/tickets", json=payload,
                                 headers={"X-Api-Key": ENVIRONMENT["PARTNER_CANONICAL_API_KEY"]})
    assert response.status_code == 202, response.text
    ticket_id: str = response.json()["ticket_id"]
    return ticket_id


def push_city(world: World) -> tuple[str, str]:
    payload = with_fresh_number(CITY_TICKET, ("hotlineNo",))
    pushed = world.city.push(payload)
    assert pushed.status == 202, pushed.body
    return pushed.body["ticket_id"], payload["hotlineNo"]


def registration_no(world: World, ticket_id: str) -> str:
    return wait_for("the national registration number",
                    lambda: world.ticket(ticket_id)["ticket"]["national_registration_no"], 20)


def links_of(world: World, ticket_id: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = world.ticket(ticket_id)["ticket"]["links"]
    return found


def test_the_same_matter_from_two_lines_is_linked_forwarded_and_decided_by_an_operator(world: World) -> None:
    first, city_no = push_city(world)
    first_no = registration_no(world, first)
    second = push_canonical(world, line_12315_ticket(
        "GS12315-E2E-0001", "酸奶过期",
        "消费者称其于2024年3月15日在惠民生活超市（营盘东路）买了两盒酸奶，回家发现已经过期，要求退款赔偿。",
        "退款并赔偿"))

    # Both are kept and forwarded: linked, never dropped.
    second_no = registration_no(world, second)
    assert second_no != first_no
    (link,) = links_of(world, second)
    assert (link["ticket_id"], link["national_registration_no"], link["adapter_id"], link["source_ticket_no"],
            link["state"]) == (first, first_no, CITY, city_no, "linked")
    assert link["score"] >= 0.6
    assert {"同一投诉人（联系电话相同）", "同一被投诉方（统一社会信用代码相同）",
            f"来源不同（{CITY} / canonical）"} <= set(link["reasons"])
    (back,) = links_of(world, first)
    assert (back["ticket_id"], back["adapter_id"], back["score"]) == (second, "canonical", link["score"])
    # The first shows the second's registration number too, though it linked back before the platform gave it.
    assert wait_for("the second's number on the first's link",
                    lambda: links_of(world, first)[0]["national_registration_no"], 20) == second_no

    # The national platform received the second ticket naming the first's registration.
    registered = world.national("GET", f"/api/v1/tickets/{second_no}",
                                headers={"Authorization": f"Bearer {ENVIRONMENT['HIG_NATIONAL_TOKEN']}"})
    (named,) = registered["ticket"]["links"]
    assert (named["ticket_id"], named["national_registration_no"]) == (first, first_no)

    # An operator confirms it through the API: both tickets show it, the audit has it.
    confirmed = world.client.post(f"{world.gateway_url}/api/v1/tickets/{second}/links/{first}",
                                  json={"decision": "confirm", "note": "同一消费者就同一事项分别向两条热线投诉"},
                                  headers={"Authorization": f"Bearer {OPERATOR}"})
    assert confirmed.status_code == 200, confirmed.text
    assert confirmed.json()["link"]["state"] == "confirmed"
    for ticket_id in (first, second):
        (shown,) = links_of(world, ticket_id)
        assert (shown["state"], shown["note"]) == ("confirmed", "同一消费者就同一事项分别向两条热线投诉")
    audit = world.client.get(f"{world.gateway_url}/api/v1/audit", params={"ticket_id": first},
                             headers={"Authorization": f"Bearer {ADMIN}"}).json()
    assert [(a["action"], a["outcome"]) for a in audit] == [("link.confirm", "ok")]

    # And dismisses it on the dashboard, on the other ticket's page.
    with httpx.Client(base_url=world.gateway_url, cookies={SESSION_COOKIE: OPERATOR}, trust_env=False) as client:
        page = client.get(f"/ops/tickets/{first}")
        text = html.unescape(page.text)
        assert f'id="link-{second}" data-state="confirmed"' in text and "同一投诉人（联系电话相同）" in text
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text)
        assert csrf is not None
        sent = client.post(f"/ops/tickets/{first}/links/{second}",
                           data={"csrf": csrf.group(1), "decision": "dismiss", "note": "诉求金额不同，另案处理"})
        assert sent.status_code == 303 and "link_dismissed" in sent.headers["location"]
    for ticket_id in (first, second):
        (shown,) = links_of(world, ticket_id)
        assert (shown["state"], shown["note"]) == ("dismissed", "诉求金额不同，另案处理")


def test_another_matter_of_the_same_consumer_and_shop_is_not_linked(world: World) -> None:
    push_city(world)
    other = push_canonical(world, line_12315_ticket(
        "GS12315-E2E-0002", "会员卡无法退卡",
        "消费者反映在惠民生活超市办理的会员卡无法退卡，预付金额500元，商家拒绝退还。", "退还预付卡余额500元"))
    assert links_of(world, other) == []


def test_a_viewer_may_not_decide_a_link_and_an_unknown_link_is_a_404_naming_the_field(world: World) -> None:
    first, _ = push_city(world)
    viewer = world.client.post(f"{world.gateway_url}/api/v1/tickets/{first}/links/01J00000000000000000000000",
                               json={"decision": "confirm"},
                               headers={"Authorization": f"Bearer {ENVIRONMENT['HIG_OPS_TOKEN_VIEWER']}"})
    assert viewer.status_code == 403
    missing = world.client.post(f"{world.gateway_url}/api/v1/tickets/{first}/links/01J00000000000000000000000",
                                json={"decision": "confirm"}, headers={"Authorization": f"Bearer {OPERATOR}"})
    assert missing.status_code == 404 and missing.json()["field"] == "linked_ticket_id"
    bad = world.client.post(f"{world.gateway_url}/api/v1/tickets/{first}/links/01J00000000000000000000000",
                            json={"decision": "merge"}, headers={"Authorization": f"Bearer {OPERATOR}"})
    assert bad.status_code == 422 and "decision" in bad.text
