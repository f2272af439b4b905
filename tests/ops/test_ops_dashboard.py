"""The dashboard at /ops over HTTP: sign-in, Chinese pages without outside resources, forms guarded, roles kept."""

from __future__ import annotations

import asyncio
import json
import re

import httpx

from contracts.delivery import DeliveryKind, OutboxEntry
from gateway.ops.dashboard import csrf_token
from gateway.store.base import DeliveryFilter
from tests.ops.ops_support import (
    CLINIC,
    COMPLAINANT,
    MEDICAL_BEAUTY,
    TOKENS,
    OpsGateway,
    city_complaint,
    city_matter,
    fixture_payload,
)
from tests.ops.test_ops_metrics import sample


async def _sign_in(gw: OpsGateway, role: str) -> None:
    response = await gw.client.post("/ops/login", data={"token": TOKENS[role], "next": "/ops"})
    assert response.status_code == 303 and response.headers["location"] == "/ops"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf" value="([0-9a-f]{64})"', html)
    assert match, "no form with a csrf field on the page"
    return match.group(1)


async def test_the_dashboard_asks_for_sign_in_and_refuses_a_wrong_token(sqlite_gw: OpsGateway) -> None:
    response = await sqlite_gw.client.get("/ops")
    assert response.status_code == 303 and response.headers["location"] == "/ops/login?next=/ops"
    wrong = await sqlite_gw.client.post("/ops/login", data={"token": "guess", "next": "/ops"})
    assert wrong.status_code == 401 and "令牌无效" in wrong.text
    evil = await sqlite_gw.client.post("/ops/login", data={"token": TOKENS["viewer"], "next": "//evil.example/ops"})
    assert evil.headers["location"] == "/ops"  # never an open redirect


async def test_the_dashboard_is_chinese_self_contained_and_shows_each_adapter_and_destination(
        sqlite_gw: OpsGateway) -> None:
    await sqlite_gw.push(city_complaint("KL-DASH-1"))
    await _sign_in(sqlite_gw, "viewer")
    page = await sqlite_gw.client.get("/ops")
    assert page.status_code == 200
    html = page.text
    for label in ("运行总览", "按对接系统", "按投递目的地", "时限预警", "最近死信", "熔断", "最久未送达", "工单查询"):
        assert label in html, label
    assert "<svg" in html and "<polyline" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # no CDN, no outside resource
    assert "<link" not in html
    row = re.search(r'<tr id="adapter-city-12345-rest">.*?</tr>', html, re.S)
    assert row and re.search(r'class="num received">1<', row.group(0))
    assert re.search(r'<tr id="destination-national">.*?class="num pending">1<', html, re.S)
    assert "重投" not in html  # a viewer gets no replay buttons
    live = await sqlite_gw.client.get("/ops/live")
    assert live.status_code == 200 and "按对接系统" in live.text and "<html" not in live.text


async def test_a_viewers_search_and_ticket_page_show_personal_data_masked(sqlite_gw: OpsGateway) -> None:
    outcome = await sqlite_gw.push(city_complaint("KL-DASH-2"))
    await _sign_in(sqlite_gw, "viewer")
    found = await sqlite_gw.client.get("/ops/tickets", params={"complainant_phone": "139 8501 2345"})
    assert found.status_code == 200 and "KL-DASH-2" in found.text
    page = await sqlite_gw.client.get(f"/ops/tickets/{outcome.ticket_id}")
    for text in (found.text, page.text):
        assert COMPLAINANT["name"] not in text and "13985012345" not in text and "200109098873" not in text
    assert "个人信息已脱敏" in page.text and "处理时间线" in page.text


async def test_an_operator_replays_a_dead_delivery_from_the_ticket_page(sqlite_gw: OpsGateway) -> None:
    outcome = await sqlite_gw.push(city_complaint("KL-DASH-3"))
    dead = await sqlite_gw.kill_delivery()
    await _sign_in(sqlite_gw, "operator")
    page = await sqlite_gw.client.get(f"/ops/tickets/{outcome.ticket_id}")
    assert f'id="replay-{dead}"' in page.text and COMPLAINANT["name"] in page.text
    forged = await sqlite_gw.client.post(f"/ops/deliveries/{dead}/replay",
                                         data={"csrf": "0" * 64, "back": f"/ops/tickets/{outcome.ticket_id}"})
    assert forged.headers["location"].endswith("msg=bad_form")
    assert (await sqlite_gw.store.get_delivery(dead)).state.value == "dead"  # type: ignore[union-attr]
    done = await sqlite_gw.client.post(f"/ops/deliveries/{dead}/replay",
                                       data={"csrf": _csrf(page.text), "back": f"/ops/tickets/{outcome.ticket_id}"})
    assert done.status_code == 303
    assert done.headers["location"] == f"/ops/tickets/{outcome.ticket_id}?msg=replayed"
    assert (await sqlite_gw.store.get_delivery(dead)).state.value == "pending"  # type: ignore[union-attr]
    after = await sqlite_gw.client.get(done.headers["location"])
    assert "已重新投递" in after.text and "运维操作：重新投递" in after.text


async def test_a_viewer_cannot_replay_even_with_a_valid_form(sqlite_gw: OpsGateway) -> None:
    await sqlite_gw.push(city_complaint("KL-DASH-4"))
    dead = await sqlite_gw.kill_delivery()
    await _sign_in(sqlite_gw, "viewer")
    valid = csrf_token(sqlite_gw.service, TOKENS["viewer"])  # what the session's form would carry
    response = await sqlite_gw.client.post(f"/ops/deliveries/{dead}/replay", data={"csrf": valid, "back": "/ops"})
    assert response.headers["location"] == "/ops?msg=forbidden"
    assert (await sqlite_gw.store.get_delivery(dead)).state.value == "dead"  # type: ignore[union-attr]


async def test_an_operator_remaps_from_the_quarantine_page(sqlite_gw: OpsGateway) -> None:
    outcome = await sqlite_gw.push(city_complaint("KL-DASH-5", appealTypeCode="99"))
    assert outcome.kind == "quarantined"
    await _sign_in(sqlite_gw, "operator")
    page = await sqlite_gw.client.get("/ops/quarantine")
    assert "classification.business_type" in page.text and "重新映射" in page.text
    response = await sqlite_gw.client.post(f"/ops/quarantine/{outcome.quarantine_id}/remap",
                                           data={"csrf": _csrf(page.text)})
    assert response.headers["location"] == "/ops/quarantine?msg=still_rejected"


async def test_the_chart_counts_each_event_once_before_and_after_the_counts_reach_the_store(
        sqlite_gw: OpsGateway) -> None:
    counts = sqlite_gw.service.counts
    counts.add("intake", 3)
    counts.add("failed")
    before = await sqlite_gw.service.chart(hours=1)
    await counts.flush()
    after = await sqlite_gw.service.chart(hours=1)
    assert (before.total("intake"), before.total("failed")) == (after.total("intake"), after.total("failed")) == (3, 1)
    assert after.step_minutes == 1 and len(after.starts) == 60
    assert (await sqlite_gw.service.chart(hours=6)).step_minutes == 5


async def test_a_delivery_waiting_behind_its_tickets_earlier_one_says_so(gw: OpsGateway) -> None:
    outcome = await gw.push(city_complaint("KL-WAITS-1"))
    assert outcome.ticket_id is not None
    [first] = await gw.store.list_deliveries(DeliveryFilter(ticket_id=outcome.ticket_id))
    await asyncio.sleep(0.005)  # enqueued later, as a status change's delivery is
    [second] = await gw.store.enqueue(outcome.ticket_id, "KL-WAITS-1:next", [OutboxEntry(
        destination=first.destination, kind=DeliveryKind.FORWARD, body=b"{}", idempotency_key="KL-WAITS-1:next")])

    detail = (await gw.get(f"/api/v1/tickets/{outcome.ticket_id}")).json()
    waits = {d["delivery"]["delivery_id"]: d["waits_for"] for d in detail["deliveries"]}
    assert waits == {first.delivery_id: None, second: first.delivery_id}
    await _sign_in(gw, "viewer")
    page = await gw.client.get(f"/ops/tickets/{outcome.ticket_id}")
    assert page.status_code == 200 and page.text.count("等待同一工单的前一投递") == 1


# -- jurisdiction reviews from the dashboard ------------------------------------------------------------------

async def _held(gw: OpsGateway, no: str) -> str:
    """A medical-beauty complaint: the screen holds it for an operator's review."""
    outcome = await gw.push(city_matter(no, *MEDICAL_BEAUTY, respondent=CLINIC))
    assert outcome.kind == "review" and outcome.ticket_id is not None
    return outcome.ticket_id


async def _settle_form(gw: OpsGateway, ticket_id: str, **fields: str) -> httpx.Response:
    page = await gw.client.get(f"/ops/tickets/{ticket_id}")
    return await gw.client.post(f"/ops/tickets/{ticket_id}/jurisdiction", data={"csrf": _csrf(page.text), **fields})


async def test_the_review_page_lists_a_held_ticket_with_its_rule_evidence_and_reason(sqlite_gw: OpsGateway) -> None:
    ticket_id = await _held(sqlite_gw, "KL-REVIEW-LIST-1")
    accepted = await sqlite_gw.push(city_complaint("KL-REVIEW-LIST-2"))  # a food complaint: not held
    await _sign_in(sqlite_gw, "viewer")

    page = await sqlite_gw.client.get("/ops/reviews")

    assert page.status_code == 200 and "待判定工单" in page.text
    row = re.search(rf'<tr id="review-{ticket_id}" data-rule="review.medical-beauty">.*?</tr>', page.text, re.S)
    assert row, page.text
    assert "KL-REVIEW-LIST-1" in row.group(0) and "registration.title" in row.group(0) and "医美" in row.group(0)
    assert f"review-{accepted.ticket_id}" not in page.text
    assert '<a href="/ops/reviews">待判定</a>' in page.text  # in the header of every page


async def test_an_operator_accepts_a_held_ticket_from_its_page_and_it_goes_to_the_national_platform(
        sqlite_gw: OpsGateway) -> None:
    ticket_id = await _held(sqlite_gw, "KL-REVIEW-ACCEPT-1")
    assert await sqlite_gw.store.list_deliveries(DeliveryFilter(ticket_id=ticket_id)) == []
    await _sign_in(sqlite_gw, "operator")
    page = await sqlite_gw.client.get(f"/ops/tickets/{ticket_id}")
    assert 'id="accept-form"' in page.text and 'id="return-form"' in page.text

    done = await _settle_form(sqlite_gw, ticket_id, outcome="accept", reason="医美消费争议，由市场监管受理")

    assert done.status_code == 303
    assert done.headers["location"] == f"/ops/tickets/{ticket_id}?msg=review_accepted"
    [forward] = await sqlite_gw.store.list_deliveries(DeliveryFilter(ticket_id=ticket_id))
    assert forward.destination == "national"
    ticket = await sqlite_gw.store.get_ticket(ticket_id)
    assert ticket is not None and ticket.routing.jurisdiction is not None
    decision = ticket.routing.jurisdiction
    assert (decision.outcome, decision.rule_id, decision.decided_by) == ("accept", "review.medical-beauty",
                                                                           "duty-operator")  # config/ops-users.yaml
    after = await sqlite_gw.client.get(done.headers["location"])
    assert "已判定受理" in after.text and 'id="accept-form"' not in after.text
    assert "运维操作：受理范围人工判定" in after.text
    [entry] = (await sqlite_gw.get("/api/v1/audit", "admin", action="jurisdiction.review")).json()
    assert (entry["actor"], entry["role"], entry["ticket_ids"]) == ("duty-operator", "operator", [ticket_id])


async def test_an_operator_returns_a_held_ticket_and_the_city_gets_its_return_with_the_default_reason_code(
        sqlite_gw: OpsGateway) -> None:
    ticket_id = await _held(sqlite_gw, "KL-REVIEW-RETURN-1")
    await _sign_in(sqlite_gw, "operator")
    page = await sqlite_gw.client.get(f"/ops/tickets/{ticket_id}")
    assert re.search(r'<option value="1" selected>1 不属于市场监督管理部门职责</option>', page.text)

    done = await _settle_form(sqlite_gw, ticket_id, outcome="return", competent_authority="卫生健康部门",
                              reason="注射后并发症属于医疗行为，请转卫生健康部门处理", return_reason_code="1")

    assert done.headers["location"] == f"/ops/tickets/{ticket_id}?msg=review_returned"
    ticket = await sqlite_gw.store.get_ticket(ticket_id)
    assert ticket is not None and ticket.lifecycle.status.value == "RETURNED"
    [callback] = await sqlite_gw.store.list_deliveries(DeliveryFilter(ticket_id=ticket_id))
    assert callback.destination == "callback:city-12345-rest"
    [claim] = await sqlite_gw.store.claim("callback:city-12345-rest", "test-worker", 30)
    body = json.loads(claim.body)
    assert body["hotlineNo"] == "KL-REVIEW-RETURN-1" and body["handleStatus"] == "3"
    assert "卫生健康部门" in body["handleOpinion"]


async def test_a_return_without_the_competent_authority_is_refused_and_the_ticket_stays_held(
        sqlite_gw: OpsGateway) -> None:
    ticket_id = await _held(sqlite_gw, "KL-REVIEW-RETURN-2")
    await _sign_in(sqlite_gw, "operator")

    done = await _settle_form(sqlite_gw, ticket_id, outcome="return", competent_authority=" ", reason="不属于本部门")

    assert done.headers["location"] == f"/ops/tickets/{ticket_id}?msg=review_invalid"
    ticket = await sqlite_gw.store.get_ticket(ticket_id)
    assert ticket is not None and ticket.routing.jurisdiction is not None
    assert ticket.routing.jurisdiction.outcome == "review"
    assert await sqlite_gw.store.list_deliveries(DeliveryFilter(ticket_id=ticket_id)) == []


async def test_a_viewer_sees_no_review_forms_and_is_refused_if_it_posts_one(sqlite_gw: OpsGateway) -> None:
    ticket_id = await _held(sqlite_gw, "KL-REVIEW-VIEWER-1")
    await _sign_in(sqlite_gw, "viewer")
    page = await sqlite_gw.client.get(f"/ops/tickets/{ticket_id}")
    assert "待判定" in page.text and 'id="accept-form"' not in page.text and 'name="csrf"' not in page.text

    valid = csrf_token(sqlite_gw.service, TOKENS["viewer"])  # what the session's form would carry
    refused = await sqlite_gw.client.post(f"/ops/tickets/{ticket_id}/jurisdiction",
                                          data={"csrf": valid, "outcome": "accept", "reason": "属于消费争议"})

    assert refused.headers["location"] == f"/ops/tickets/{ticket_id}?msg=forbidden"
    ticket = await sqlite_gw.store.get_ticket(ticket_id)
    assert ticket is not None and ticket.routing.jurisdiction is not None
    assert ticket.routing.jurisdiction.outcome == "review"
    assert await sqlite_gw.store.list_deliveries(DeliveryFilter(ticket_id=ticket_id)) == []


async def test_a_ticket_settled_meanwhile_is_not_settled_twice_from_a_stale_page(sqlite_gw: OpsGateway) -> None:
    ticket_id = await _held(sqlite_gw, "KL-REVIEW-TWICE-1")
    await _sign_in(sqlite_gw, "operator")
    page = await sqlite_gw.client.get(f"/ops/tickets/{ticket_id}")
    form = {"csrf": _csrf(page.text), "outcome": "accept", "reason": "属于消费争议"}
    first = await sqlite_gw.client.post(f"/ops/tickets/{ticket_id}/jurisdiction", data=form)
    assert first.headers["location"].endswith("msg=review_accepted")

    second = await sqlite_gw.client.post(f"/ops/tickets/{ticket_id}/jurisdiction", data=form)

    assert second.headers["location"] == f"/ops/tickets/{ticket_id}?msg=not_under_review"
    assert len(await sqlite_gw.store.list_deliveries(DeliveryFilter(ticket_id=ticket_id))) == 1


async def test_routing_warnings_are_shown_on_the_ticket_page_and_in_the_api(sqlite_gw: OpsGateway) -> None:
    outcome = await sqlite_gw.push(city_complaint("KL-WARN-1"))
    assert outcome.ticket_id is not None
    stored = await sqlite_gw.store.get_ticket(outcome.ticket_id)
    assert stored is not None
    warning = "no market-supervision organisation below the province is configured for region 522701 都匀市"
    warned = stored.model_copy(update={"routing": stored.routing.model_copy(update={"warnings": [warning]})})
    await sqlite_gw.store.save_ticket(warned, [], expected_revision=stored.lifecycle.revision)
    await _sign_in(sqlite_gw, "viewer")

    page = await sqlite_gw.client.get(f"/ops/tickets/{outcome.ticket_id}")
    detail = await sqlite_gw.get(f"/api/v1/tickets/{outcome.ticket_id}")

    assert re.search(r'<div class="warnings" id="routing-warnings">.*?522701 都匀市', page.text, re.S)
    assert detail.json()["ticket"]["routing"]["warnings"] == [warning]


async def test_the_received_card_and_the_chart_legend_agree_when_a_partner_pushes_a_ticket_again(
        sqlite_gw: OpsGateway) -> None:
    await sqlite_gw.push(city_complaint("KL-DASH-AGREE-1"))
    again = await sqlite_gw.push(city_complaint("KL-DASH-AGREE-1"))  # the same ticket, pushed twice
    assert again.kind == "repeat"
    await sqlite_gw.push(city_complaint("KL-DASH-AGREE-2", appealTypeCode="99"))  # quarantined
    await _sign_in(sqlite_gw, "viewer")
    page = (await sqlite_gw.client.get("/ops/live")).text
    card = re.search(r'id="total-received">(\d+)<', page)
    legend = re.search(r'id="chart-intake">(\d+)<', page)
    assert card and legend and card.group(1) == legend.group(1) == "2"


async def test_a_returned_payload_is_counted_as_returned_not_as_quarantine_waiting_for_an_operator(
        sqlite_gw: OpsGateway) -> None:
    """A 退单 is closed business (the partner heard it): neither the 隔离待处理 column nor hig_quarantine_open (which
    the quarantine_growing alert reads) counts it; the 已退单 column does, and 累计接收 counts every payload once."""
    assert (await sqlite_gw.push(fixture_payload("city-12345-rest", "04-help-request-returned"))).kind == "returned"
    assert (await sqlite_gw.push(city_complaint("KL-DASH-RET-2", appealTypeCode="99"))).kind == "quarantined"
    assert (await sqlite_gw.push(city_complaint("KL-DASH-RET-3"))).kind == "created"

    metrics = (await sqlite_gw.client.get("/metrics")).text
    assert sample(metrics, "hig_quarantine_open", adapter="city-12345-rest") == 1
    await _sign_in(sqlite_gw, "viewer")
    page = (await sqlite_gw.client.get("/ops/live")).text
    row = re.search(r'<tr id="adapter-city-12345-rest">(.*?)</tr>', page, re.S)
    assert row
    assert re.search(r'class="num quarantined"><a href="/ops/quarantine">1</a><', row.group(1))
    assert re.search(r'class="num returned">1<', row.group(1))
    assert re.search(r'class="num received">3<', row.group(1))
    assert re.search(r'id="total-received">3<', page)


async def test_a_returned_payload_is_listed_as_returned_without_a_remap_button(sqlite_gw: OpsGateway) -> None:
    returned = await sqlite_gw.push(fixture_payload("city-12345-rest", "04-help-request-returned"))
    assert returned.kind == "returned"
    failed = await sqlite_gw.push(city_complaint("KL-DASH-Q-2", appealTypeCode="99"))
    await _sign_in(sqlite_gw, "operator")
    page = (await sqlite_gw.client.get("/ops/quarantine")).text

    def row(quarantine_id: str | None) -> str:
        found = re.search(rf'<tr id="quarantine-{quarantine_id}">(.*?)</tr>', page, re.S)
        assert found
        return found.group(1)

    assert 'data-state="returned"' in row(returned.quarantine_id) and "已退单" in row(returned.quarantine_id)
    assert "重新映射" not in row(returned.quarantine_id) and "待处理" not in row(returned.quarantine_id)
    assert 'data-state="open"' in row(failed.quarantine_id) and "重新映射" in row(failed.quarantine_id)
    assert re.search(r"button\.act \{[^}]*white-space:nowrap", page)  # 重新映射 on one line, not a char per line


async def test_the_search_page_shows_the_newest_tickets_before_any_search(sqlite_gw: OpsGateway) -> None:
    older = await sqlite_gw.push(city_complaint("KL-DASH-LATEST-1"))
    newer = await sqlite_gw.push(city_complaint("KL-DASH-LATEST-2"))
    await _sign_in(sqlite_gw, "viewer")
    page = (await sqlite_gw.client.get("/ops/tickets")).text
    assert "最新工单（2）" in page
    assert re.findall(r'data-ticket="([^"]+)"', page) == [newer.ticket_id, older.ticket_id]
