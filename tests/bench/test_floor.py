"""The intake floor (bench/floor) stays a fair floor: its hand-written mappings make the specs' tickets, and its
minimal server really authenticates, maps and durably stores what it acknowledges.

Nothing here imports bench.common.procs or the benchmark runners: procs sets HIG_PHONE_HASH_KEY in the
environment on import, which the gateways that other tests start would then inherit."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from bench.common import payloads
from bench.common.hand_mapping import check_against_specs
from bench.floor.server import FLOOR_CITY_PATH, FLOOR_SOAP_PATH, FLOOR_SOAP_USER, FloorFastPath, create_app

API_KEY = "floor-test-key"
PASSWORD = "floor-test-password"


def test_the_hand_written_mappings_make_the_specs_tickets() -> None:
    check_against_specs(payloads.run_tag(), n=20)


@pytest.mark.parametrize("answer", ["routes", "fast-path"])
async def test_the_floor_server_acknowledges_only_what_it_authenticated_mapped_and_stored(tmp_path: Path,
                                                                                          answer: str) -> None:
    db = tmp_path / "floor.db"
    app = create_app(API_KEY, PASSWORD, "sqlite", db, "redis://127.0.0.1:6379/15", answer)  # type: ignore[arg-type]
    tag = payloads.run_tag()
    created = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    envelope = payloads.soap_envelope(payloads.province_order(tag, 1), FLOOR_SOAP_USER, PASSWORD, created)
    forged = payloads.soap_envelope(payloads.province_order(tag, 2), FLOOR_SOAP_USER, "not-the-password", created)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://floor") as client:
        refused = await client.post(FLOOR_CITY_PATH, content=payloads.city_body(tag, 1), headers={"X-Api-Key": "x"})
        taken = await client.post(FLOOR_CITY_PATH, content=payloads.city_body(tag, 1), headers={"X-Api-Key": API_KEY})
        soap = await client.post(FLOOR_SOAP_PATH, content=envelope, headers={"Content-Type": "text/xml"})
        fault = await client.post(FLOOR_SOAP_PATH, content=forged, headers={"Content-Type": "text/xml"})
    assert refused.status_code == 401
    assert taken.status_code == 202
    assert soap.status_code == 200 and b"<ticketId>" in soap.content
    assert fault.status_code == 500 and b"SoapRefused" in fault.content
    with sqlite3.connect(db) as check:
        stored = dict(check.execute("SELECT id, body FROM tickets").fetchall())
        lanes = check.execute("SELECT lane, count(*) FROM deliveries GROUP BY lane").fetchall()
        nonces = check.execute("SELECT count(*) FROM nonces").fetchone()[0]
    assert set(stored) == {taken.json()["ticket_id"], soap.text.split("<ticketId>")[1].split("<")[0]}
    assert {json.loads(body)["source"]["source_system"] for body in stored.values()} == {"city-12345",
                                                                                        "province-12345"}
    assert lanes == [("national", 2)]
    assert nonces == 1


def test_each_benchmark_order_comes_from_a_consumer_of_its_own() -> None:
    # The same complainant on every order made each one a cross-line duplicate of all before (links at intake).
    tag = payloads.run_tag()
    orders = [payloads.province_order(tag, i) for i in range(50)]
    tickets = [json.loads(payloads.city_body(tag, i)) for i in range(50)]
    assert len({(o["mobilephone"], o["idcard"]) for o in orders}) == 50
    assert len({(t["contactPhone"], t["contactIdCard"]) for t in tickets}) == 50


def test_the_floor_answers_through_a_middleware_of_the_app_as_the_gateway_does(tmp_path: Path) -> None:
    # Wrapped around the app, the fast path would skip FastAPI's entry and error middleware the gateway's pushes pay.
    floor = create_app(API_KEY, PASSWORD, "none", tmp_path / "floor.db", "redis://127.0.0.1:6379/15")
    routed = create_app(API_KEY, PASSWORD, "none", tmp_path / "floor.db", "redis://127.0.0.1:6379/15", "routes")
    assert [m.cls for m in floor.user_middleware] == [FloorFastPath]
    assert routed.user_middleware == []


async def test_the_deciding_floor_makes_the_gateways_decisions_and_stores_what_they_add(tmp_path: Path) -> None:
    # The floor that decides (bench/floor/decisions.py) must really screen, route and index, or its figure would
    # be a floor that pays less than the work it names.
    db = tmp_path / "floor.db"
    app = create_app(API_KEY, PASSWORD, "sqlite", db, "redis://127.0.0.1:6379/15", decide=True)
    tag = payloads.run_tag()
    poisoning = {**payloads.city_ticket(tag, 1), "appealTitle": "职工食堂群体性食物中毒",
                 "appealContent": "凯里市某公司职工食堂午餐后40多人出现呕吐腹泻，疑似群体性食物中毒，多人已送医。"}
    traffic = {**payloads.city_ticket(tag, 2), "appealTitle": "路口红绿灯坏了", "appealRequest": "尽快修复",
               "goods": None, "appealContent": "凯里市营盘东路与北京东路交叉口的交通信号灯已经坏了三天，"
                                               "早晚高峰车辆拥堵，存在交通安全隐患。"}
    again = {**payloads.city_ticket(tag, 3), **payloads.consumer(tag, 0)}  # the same consumer about the same shop
    headers = {"X-Api-Key": API_KEY}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://floor") as client:
        taken = await client.post(FLOOR_CITY_PATH, content=payloads.city_body(tag, 0), headers=headers)
        linked = await client.post(FLOOR_CITY_PATH, content=json.dumps(again, ensure_ascii=False).encode(),
                                   headers=headers)
        urgent = await client.post(FLOOR_CITY_PATH, content=json.dumps(poisoning, ensure_ascii=False).encode(),
                                   headers=headers)
        returned = await client.post(FLOOR_CITY_PATH, content=json.dumps(traffic, ensure_ascii=False).encode(),
                                     headers=headers)
    assert (taken.status_code, urgent.status_code, linked.status_code) == (202, 202, 202)
    assert returned.status_code == 200 and returned.json() == {"outcome": "returned"}  # the screen's 退单
    taken_id, urgent_id, linked_id = (r.json()["ticket_id"] for r in (taken, urgent, linked))
    with sqlite3.connect(db) as check:
        stored = {row[0]: json.loads(row[1]) for row in check.execute("SELECT id, body FROM tickets")}
        lanes = set(check.execute("SELECT ticket_id, lane FROM deliveries").fetchall())
        indexed = check.execute("SELECT count(DISTINCT ticket_id) FROM link_log").fetchone()[0]
    assert set(stored) == {taken_id, urgent_id, linked_id}
    # the second ticket of one consumer about one shop was found by the look-up and linked to the first
    assert [link["ticket_id"] for link in stored[linked_id]["links"]] == [taken_id]
    ticket = stored[taken_id]
    assert ticket["routing"]["handler_org_code"] and ticket["routing"]["deadlines"]  # handler and time limits
    assert ticket["routing"]["jurisdiction"]["outcome"] == "accept"
    assert lanes == {(taken_id, "national"), (urgent_id, "national"), (linked_id, "national"),
                     (urgent_id, "emergency")}  # the 特急 matter also reaches emergency command
    assert indexed == 3  # each under its duplicate-link marks
