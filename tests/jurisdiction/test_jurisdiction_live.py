"""The jurisdiction screen through a live gateway: the city 12345 pushes, the national simulator and the city's
callback receiver are real, operators settle reviews through the ops API."""

from __future__ import annotations

import copy
import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.e2e_support import ENVIRONMENT, VIEWER_TOKEN, World, running_world, wait_for

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "mapping" / "fixtures" / "city-12345-rest" / "01-food-complaint.json"
OPERATOR = {"Authorization": f"Bearer {ENVIRONMENT['HIG_OPS_TOKEN_OPERATOR']}"}
VIEWER = {"Authorization": f"Bearer {VIEWER_TOKEN}"}

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    with running_world(tmp_path_factory.mktemp("jurisdiction")) as running:
        yield running


def city_order(number: str, title: str, content: str, *, respondent: dict[str, str] | None = None) -> dict[str, Any]:
    order: dict[str, Any] = copy.deepcopy(json.loads(FIXTURE.read_text(encoding="utf-8")))
    order.update(hotlineNo=number, platformNo=f"QDN-{number}", appealTitle=title, appealContent=content,
                 appealRequest="请尽快处理")
    order.pop("goods")
    if respondent is None:
        order.pop("respondent")
    else:
        order["respondent"] = respondent
    return order


NOISE = ("广场舞噪音扰民", "小区旁边广场每天晚上七点到十点跳广场舞，音响开得很大，老人小孩无法休息，多次沟通无果。")
MEDICAL_BEAUTY = ("医美机构注射玻尿酸后出现结节",
                  "在某医疗美容诊所注射玻尿酸后面部出现结节，诊所说是个人体质问题，拒绝处理。")
CLINIC = {"name": "凯里某医疗美容诊所有限公司", "creditCode": "91522601MA6DL4KQ33", "address": "凯里市韶山南路8号"}


def city_callbacks(world: World, number: str) -> list[dict[str, Any]]:
    return [c.body for c in world.city.callbacks.received()
            if isinstance(c.body, dict) and c.body.get("hotlineNo") == number]


def national_keys(world: World) -> set[str]:
    return {t["idempotency_key"] for t in world.national_tickets()}


def push_review(world: World, number: str) -> str:
    result = world.city.push(city_order(number, *MEDICAL_BEAUTY, respondent=CLINIC))
    assert result.status == 202, result.body
    assert result.body["review"] is True
    ticket_id: str = result.body["ticket_id"]
    return ticket_id


def settle(world: World, ticket_id: str, body: dict[str, Any], headers: dict[str, str] = OPERATOR) -> Any:
    return world.client.post(f"{world.gateway_url}/api/v1/tickets/{ticket_id}/jurisdiction", json=body,
                             headers=headers)


def test_a_matter_of_another_authority_is_answered_returned_and_the_city_hears_the_return(world: World) -> None:
    number = "KL12345-JUR-RETURN-01"
    result = world.city.push(city_order(number, *NOISE))

    assert result.status == 200
    assert result.body["returned"] is True and result.body["ticket_id"] is None
    assert result.body["reason_code"] == "1"
    assert "生态环境部门、公安机关或所在街道社区" in result.body["reason"]
    callback = wait_for("the 退单 callback", lambda: city_callbacks(world, number) or None, 15)[0]
    assert callback["handleStatus"] == "3" and callback["handleResult"] == "3"
    assert "生态环境部门" in callback["handleOpinion"]
    quarantined = next(q for q in world.quarantined()
                       if any(e["rule"] == "jurisdiction:return.noise-neighbours" for e in q["errors"]))
    assert any(e["rule"] == "returned:1" for e in quarantined["errors"])


def test_a_review_push_is_answered_202_review_and_nothing_reaches_the_national_platform(world: World) -> None:
    ticket_id = push_review(world, "KL12345-JUR-REVIEW-01")

    detail = world.ticket(ticket_id)
    decision = detail["ticket"]["routing"]["jurisdiction"]
    assert decision["outcome"] == "review" and decision["rule_id"] == "review.medical-beauty"
    assert {"field": "registration.title", "matched": "医美"} in decision["evidence"]
    time.sleep(1.5)  # the national lane polls every 0.2 s at most: it had every chance to send
    assert world.deliveries(ticket_id=ticket_id) == []
    assert detail["ticket"]["idempotency_key"] not in national_keys(world)
    listed = world.client.get(f"{world.gateway_url}/api/v1/reviews", headers=VIEWER).json()
    assert ticket_id in [r["ticket"]["ticket_id"] for r in listed]


def test_an_operator_accepting_a_review_sends_the_ticket_to_the_national_platform(world: World) -> None:
    ticket_id = push_review(world, "KL12345-JUR-REVIEW-02")
    key = world.ticket(ticket_id)["ticket"]["idempotency_key"]

    answer = settle(world, ticket_id, {"outcome": "accept", "reason": "医美机构虚假宣传与消费争议，由市场监管受理"})

    assert answer.status_code == 200, answer.text
    assert answer.json()["jurisdiction"]["decided_by"] == "duty-operator"  # config/ops-users.yaml
    wait_for("the national platform to register the accepted ticket", lambda: key in national_keys(world), 20)
    decision = world.ticket(ticket_id)["ticket"]["routing"]["jurisdiction"]
    assert decision["outcome"] == "accept" and decision["rule_id"] == "review.medical-beauty"
    assert any(a["action"] == "jurisdiction.review" for a in world.ticket(ticket_id)["audit"])


def test_an_operator_returning_a_review_sends_the_city_its_return(world: World) -> None:
    number = "KL12345-JUR-REVIEW-03"
    ticket_id = push_review(world, number)

    answer = settle(world, ticket_id, {"outcome": "return", "competent_authority": "卫生健康部门",
                                       "reason": "注射后并发症属于医疗行为，请转卫生健康部门处理"})

    assert answer.status_code == 200, answer.text
    assert answer.json()["status"] == "RETURNED"
    callback = wait_for("the 退单 callback", lambda: city_callbacks(world, number) or None, 15)[0]
    assert callback["handleStatus"] == "3" and "卫生健康部门" in callback["handleOpinion"]
    assert world.ticket(ticket_id)["ticket"]["idempotency_key"] not in national_keys(world)
    # The sender's echo: the city has heard the return (RETURNED), once its callback was delivered.
    echo = wait_for("the return heard", lambda: (e if (e := world.ticket(ticket_id)["echo"]) and e["heard_status"]
                                                 else None), 15)
    assert (echo["latest_status"], echo["heard_status"], echo["behind_since"]) == ("RETURNED", "RETURNED", None)


def test_a_review_is_settled_once_and_only_by_an_operator(world: World) -> None:
    ticket_id = push_review(world, "KL12345-JUR-REVIEW-04")
    body = {"outcome": "accept", "reason": "属于消费争议"}

    assert settle(world, ticket_id, body, headers=VIEWER).status_code == 403
    assert settle(world, ticket_id, body).status_code == 200
    again = settle(world, ticket_id, body)
    assert again.status_code == 409 and again.json()["error"] == "not_under_review"
    assert settle(world, "01J0000000000000000000000Z", body).status_code == 404


def test_two_operators_settling_one_review_at_once_one_wins_and_only_its_deliveries_are_made(world: World) -> None:
    """An accept and a return sent together: one is settled, the other refused as no longer under review; the
    ticket is forwarded or returned, never both (each settle reads, changes and saves at the revision read)."""
    accept = {"outcome": "accept", "reason": "属于消费争议，由市场监管受理"}
    back = {"outcome": "return", "competent_authority": "卫生健康部门", "reason": "医疗行为，请转卫生健康部门处理"}
    for n in range(3):
        ticket_id = push_review(world, f"KL12345-JUR-RACE-0{n}")

        def send(body: dict[str, Any], ticket_id: str = ticket_id) -> httpx.Response:
            with httpx.Client(trust_env=False, timeout=30) as client:
                return client.post(f"{world.gateway_url}/api/v1/tickets/{ticket_id}/jurisdiction", json=body,
                                   headers=OPERATOR)

        with ThreadPoolExecutor(max_workers=2) as pool:
            answers = list(pool.map(send, (accept, back)))

        codes = sorted(a.status_code for a in answers)
        assert codes == [200, 409], [a.text for a in answers]
        winner = next(body for body, a in zip((accept, back), answers, strict=True) if a.status_code == 200)
        loser = next(a for a in answers if a.status_code == 409)
        assert loser.json()["error"] == "not_under_review"
        ticket = world.ticket(ticket_id)["ticket"]
        assert ticket["routing"]["jurisdiction"]["outcome"] == winner["outcome"]
        destinations = sorted(d["destination"] for d in world.deliveries(ticket_id=ticket_id))
        if winner is accept:
            assert "national" in destinations and not any(d.startswith("callback:") for d in destinations)
        else:
            assert ticket["lifecycle"]["status"] == "RETURNED"
            assert "national" not in destinations


def test_a_return_without_the_competent_authority_is_refused_naming_the_field(world: World) -> None:
    ticket_id = push_review(world, "KL12345-JUR-REVIEW-05")

    answer = settle(world, ticket_id, {"outcome": "return", "reason": "不属于本部门"})

    assert answer.status_code == 422
    assert "competent_authority" in answer.text


def test_an_accepted_push_records_the_rule_that_accepted_it(world: World) -> None:
    order = json.loads(FIXTURE.read_text(encoding="utf-8"))
    order["hotlineNo"] = "KL12345-JUR-ACCEPT-01"
    result = world.city.push(order)

    assert result.status == 202 and "review" not in result.body
    decision = world.ticket(result.body["ticket_id"])["ticket"]["routing"]["jurisdiction"]
    assert decision["outcome"] == "accept" and decision["rule_id"] == "accept.food"


def test_the_dashboards_ticket_page_shows_the_rule_and_its_evidence(world: World) -> None:
    ticket_id = push_review(world, "KL12345-JUR-REVIEW-06")
    with httpx.Client(base_url=world.gateway_url, trust_env=False, timeout=10) as browser:
        signed_in = browser.post("/ops/login", data={"token": VIEWER_TOKEN, "next": "/ops"})
        assert signed_in.status_code == 303
        page = browser.get(f"/ops/tickets/{ticket_id}")

    assert page.status_code == 200
    assert 'data-outcome="review"' in page.text and "review.medical-beauty" in page.text
    assert "命中 “医美”" in page.text and "待人工判定" in page.text


@contextmanager
def dashboard(world: World, token: str) -> Iterator[httpx.Client]:
    """A client signed in to the dashboard: it carries the session cookie as a browser does."""
    with httpx.Client(base_url=world.gateway_url, trust_env=False, timeout=10) as browser:
        assert browser.post("/ops/login", data={"token": token, "next": "/ops"}).status_code == 303
        yield browser


def form_token(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert match, "no form with a csrf field on the page"
    return match.group(1)


def test_an_operator_accepting_a_review_from_the_dashboard_sends_it_to_the_national_platform(world: World) -> None:
    ticket_id = push_review(world, "KL12345-JUR-REVIEW-07")
    key = world.ticket(ticket_id)["ticket"]["idempotency_key"]
    with dashboard(world, ENVIRONMENT["HIG_OPS_TOKEN_OPERATOR"]) as browser:
        listed = browser.get("/ops/reviews")
        assert f'id="review-{ticket_id}"' in listed.text
        page = browser.get(f"/ops/tickets/{ticket_id}")
        done = browser.post(f"/ops/tickets/{ticket_id}/jurisdiction", data={
            "csrf": form_token(page.text), "outcome": "accept", "reason": "医美消费争议，由市场监管受理"})
        assert done.status_code == 303 and done.headers["location"].endswith("msg=review_accepted")
        assert f'id="review-{ticket_id}"' not in browser.get("/ops/reviews").text

    wait_for("the national platform to register the accepted ticket", lambda: key in national_keys(world), 20)
    audit = world.ticket(ticket_id)["audit"]
    assert [(a["action"], a["actor"]) for a in audit] == [("jurisdiction.review", "duty-operator")]


def test_an_operator_returning_a_review_from_the_dashboard_sends_the_city_its_return(world: World) -> None:
    number = "KL12345-JUR-REVIEW-08"
    ticket_id = push_review(world, number)
    with dashboard(world, ENVIRONMENT["HIG_OPS_TOKEN_OPERATOR"]) as browser:
        page = browser.get(f"/ops/tickets/{ticket_id}")
        done = browser.post(f"/ops/tickets/{ticket_id}/jurisdiction", data={
            "csrf": form_token(page.text), "outcome": "return", "competent_authority": "卫生健康部门",
            "return_reason_code": "1", "reason": "注射后并发症属于医疗行为，请转卫生健康部门处理"})
        assert done.headers["location"].endswith("msg=review_returned")

    callback = wait_for("the 退单 callback", lambda: city_callbacks(world, number) or None, 15)[0]
    assert callback["handleStatus"] == "3" and "卫生健康部门" in callback["handleOpinion"]
    assert world.ticket(ticket_id)["ticket"]["lifecycle"]["status"] == "RETURNED"
