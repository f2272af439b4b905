"""A ticket's follow-ups on the ops API and the dashboard's ticket page, on both stores: versions with what changed,
urges with their count, the withdrawal, and the raw payload of each version for an operator (audited)."""

from __future__ import annotations

import json
import re

from contracts.ticket import idempotency_key_of
from gateway.store.base import DeliveryFilter
from tests.ops.ops_support import (
    CLINIC,
    MEDICAL_BEAUTY,
    TOKENS,
    OpsGateway,
    city_complaint,
    city_matter,
    fixture_payload,
)

NUMBER = "KL-FOLLOW-1"


async def sends_follow_ups(gw: OpsGateway) -> str:
    """A complaint, its version 2, a supplement (version 3), two urges and a withdrawal, under one number."""
    created = await gw.push(city_complaint(NUMBER))
    assert created.kind == "created" and created.ticket_id is not None
    version_2 = {**fixture_payload("city-12345-rest", "09-food-complaint-version-2"), "hotlineNo": NUMBER}
    supplement = {**fixture_payload("city-12345-rest", "10-food-complaint-supplement"), "hotlineNo": NUMBER}
    urge = {**fixture_payload("city-12345-rest", "11-food-complaint-urge"), "hotlineNo": NUMBER}
    withdrawal = {**fixture_payload("city-12345-rest", "12-food-complaint-withdrawal"), "hotlineNo": NUMBER}
    for payload in (version_2, supplement, urge, {**urge, "msgNo": "CB-2024-0322-0099"}, withdrawal):
        outcome = await gw.push(payload)
        assert (outcome.kind, outcome.ticket_id) == ("updated", created.ticket_id)
    return created.ticket_id


async def test_the_ticket_api_lists_versions_urges_and_the_withdrawal(gw: OpsGateway) -> None:
    ticket_id = await sends_follow_ups(gw)
    response = await gw.get(f"/api/v1/tickets/{ticket_id}")
    assert response.status_code == 200
    detail = response.json()
    updates = detail["ticket"]["sender_updates"]
    assert [(v["version"], v["kind"]) for v in updates["versions"]] == [
        ("1", "original"), ("2", "new_version"), ("3", "supplement")]
    assert updates["versions"][1]["changed"] == ["registration"]
    assert updates["urge_count"] == 2 and len(updates["urges"]) == 2
    assert updates["withdrawal"]["state"] == "requested"
    kinds = [e["kind"] for e in detail["timeline"]]
    assert (kinds.count("version"), kinds.count("urge"), kinds.count("withdrawal")) == (2, 2, 1)
    national = sorted(d["delivery"]["kind"] for d in detail["deliveries"])
    assert national == ["forward", "update", "update", "urge", "urge", "withdraw"]


async def test_the_ticket_page_shows_the_senders_follow_ups(gw: OpsGateway) -> None:
    ticket_id = await sends_follow_ups(gw)
    signed_in = await gw.client.post("/ops/login", data={"token": TOKENS["operator"], "next": "/ops"})
    assert signed_in.status_code == 303
    page = await gw.client.get(f"/ops/tickets/{ticket_id}")
    assert page.status_code == 200
    html = page.text
    assert "来源补充、催办与撤诉" in html
    assert re.search(r'id="urge-count" data-count="2">催办 2 次<', html)
    versions = re.findall(r'<tr data-version="(\d+)" data-kind="(\w+)">', html)
    assert versions == [("1", "original"), ("2", "new_version"), ("3", "supplement")]
    assert "市民补充材料：已上传购物小票照片及过期酸奶包装照片" in html
    assert len(re.findall(r'<tr data-urge="', html)) == 2 and "CB-2024-0322-0099" in html
    assert re.search(r'<p id="withdrawal" data-state="requested">', html) and "已转报，待全国平台答复" in html


async def test_an_operator_reads_the_raw_payload_of_each_version_and_a_viewer_may_not(gw: OpsGateway) -> None:
    ticket_id = await sends_follow_ups(gw)

    first = await gw.get(f"/api/v1/tickets/{ticket_id}/raw", role="operator")
    second = await gw.get(f"/api/v1/tickets/{ticket_id}/raw", role="operator", version="2")
    third = await gw.get(f"/api/v1/tickets/{ticket_id}/raw", role="operator", version="3")
    assert first.status_code == second.status_code == third.status_code == 200
    assert "version" not in json.loads(first.content)
    assert json.loads(second.content)["version"] == 2
    assert json.loads(third.content)["msgNo"] == "BC-2024-0316-0012"
    assert second.headers["content-type"].startswith("application/json")
    missing = await gw.get(f"/api/v1/tickets/{ticket_id}/raw", role="operator", version="9")
    assert missing.status_code == 404 and missing.json()["field"] == "version"
    viewer = await gw.get(f"/api/v1/tickets/{ticket_id}/raw", role="viewer", version="2")
    assert viewer.status_code == 403
    audit = await gw.get("/api/v1/audit", role="admin", action="ticket.raw")
    assert [e["detail"]["version"] for e in audit.json()] == ["3", "2", "1"]


async def test_an_urge_that_came_before_its_ticket_is_applied_when_re_mapped(gw: OpsGateway) -> None:
    urge = {**fixture_payload("city-12345-rest", "11-food-complaint-urge"), "hotlineNo": NUMBER}
    early = await gw.push(urge)
    assert early.kind == "quarantined" and early.errors[0].rule == "unknown_ticket"
    created = await gw.push(city_complaint(NUMBER))

    remapped = await gw.post(f"/api/v1/quarantine/{early.quarantine_id}/remap", "operator")
    assert remapped.status_code == 200, remapped.text
    assert (remapped.json()["outcome"], remapped.json()["ticket_id"]) == ("updated", created.ticket_id)
    ticket = await gw.store.get_ticket(str(created.ticket_id))
    assert ticket is not None and ticket.sender_updates.urge_count == 1
    kept = await gw.store.get_quarantined(str(early.quarantine_id))
    assert kept is not None and kept.resolved_ticket_id == created.ticket_id


async def test_a_ticket_updated_while_held_for_review_is_registered_under_its_first_versions_key(
        gw: OpsGateway) -> None:
    held = await gw.push(city_matter("KL-FOLLOW-HELD", *MEDICAL_BEAUTY, respondent=CLINIC))
    assert held.kind == "review" and held.ticket_id is not None
    version_2 = {**city_matter("KL-FOLLOW-HELD", *MEDICAL_BEAUTY, respondent=CLINIC), "version": "2",
                 "appealRequest": "退还注射费用并赔偿"}
    updated = await gw.push(version_2)
    assert (updated.kind, updated.ticket_id) == ("updated", held.ticket_id)
    assert await gw.store.list_deliveries(DeliveryFilter(ticket_id=held.ticket_id)) == []  # nothing sent yet

    settled = await gw.post(f"/api/v1/tickets/{held.ticket_id}/jurisdiction", "operator",
                            {"outcome": "accept", "reason": "属消费纠纷，予以受理"})
    assert settled.status_code == 200, settled.text
    (forward,) = await gw.store.list_deliveries(DeliveryFilter(ticket_id=held.ticket_id, destination="national"))
    assert forward.idempotency_key == idempotency_key_of("city-12345", "KL-FOLLOW-HELD", "1")
    [claim] = await gw.store.claim("national", "test", 60)
    assert json.loads(claim.body)["registration"]["request"] == "退还注射费用并赔偿"  # the version it has now
