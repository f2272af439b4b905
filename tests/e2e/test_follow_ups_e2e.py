"""Partner follow-ups through live gateways under the national platform's fault injection: a new version, a
supplement (补充材料), urges (催办) and a withdrawal (撤诉) from a REST push (city 12345), a SOAP push and a SOAP poll
(province 12345) and a REST poll (the legacy lines) each reach the national platform as follow-ups of ONE
registration; the platform's signed answers are kept on the ticket and its WITHDRAWN event moves the lifecycle.

Everything is real and on loopback: the gateway application (SQLite store, delivery engine, pollers), the national
12315 simulator with faults, and the partner simulators.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import httpx
import pytest
from zeep.wsse.username import UsernameToken

from simulators.national.config import FaultPlan
from simulators.peer import with_fresh_number
from simulators.province12345.app import follow_up_fixtures
from tests.e2e.e2e_support import ENVIRONMENT, World, province_fixture, running_world, wait_for
from tests.soap.conftest import zeep_client

pytestmark = pytest.mark.slow

# 30 % of national calls fail: 503s, 429s with Retry-After, timeouts and dropped connections whose request the
# platform processed (so the gateway's retry of a follow-up is a duplicate its key must absorb).
FAULTS = FaultPlan(error_ratio=0.10, error_status=503, rate_limit_ratio=0.07, retry_after_seconds=1,
                   timeout_ratio=0.07, timeout_seconds=3.0, drop_ratio=0.06)
SEED = 16
OPERATOR = ENVIRONMENT["HIG_OPS_TOKEN_OPERATOR"]
PROVINCE = "province-12345-soap"
# The follow-ups each partner sends after its ticket: a new version, a supplement, an urge and a withdrawal.
PROVINCE_FOLLOW_UPS = ["09-food-complaint-version-2", "10-food-complaint-supplement", "11-food-complaint-urge",
                       "12-food-complaint-withdrawal"]
LEGACY_FOLLOW_UPS = ["09-12365-complaint-version-2", "10-12365-complaint-supplement", "11-12365-complaint-urge",
                     "12-12365-complaint-withdrawal"]


def city_sends(world: World) -> tuple[str, str]:
    """The city pushes a complaint, its version 2, the version 2 again, version 1 again, a supplement (version 3),
    an urge twice and a withdrawal, all under one fresh hotlineNo; every answer names the same ticket."""
    city = world.city
    first = with_fresh_number(city.tickets["01-food-complaint"], ("hotlineNo",))
    number = str(first["hotlineNo"])
    created = city.push(first)
    assert created.status == 202, created.body
    ticket_id = str(created.body["ticket_id"])

    def push(name: str) -> dict[str, Any]:
        result = city.push({**city.tickets[name], "hotlineNo": number})
        assert result.status == 200, result.body
        return dict(result.body)

    assert push("09-food-complaint-version-2") == {"ticket_id": ticket_id, "repeat": False, "follow_up": "new_version"}
    assert push("09-food-complaint-version-2") == {"ticket_id": ticket_id, "repeat": True, "follow_up": "new_version"}
    stale = city.push(first)
    assert (stale.status, stale.body["ticket_id"], stale.body["repeat"]) == (200, ticket_id, True)
    assert push("10-food-complaint-supplement")["follow_up"] == "supplement"
    assert push("11-food-complaint-urge") == {"ticket_id": ticket_id, "repeat": False, "follow_up": "urge"}
    assert push("11-food-complaint-urge")["repeat"] is True
    assert push("12-food-complaint-withdrawal") == {"ticket_id": ticket_id, "repeat": False, "follow_up": "withdrawal"}
    return ticket_id, number


def province_pushes(world: World) -> str:
    """The province pushes a work order over SOAP (SubmitTicket, WS-Security), then its follow-ups the same way."""
    infoid = "GZ12345-E2E-PUSH-0001"
    orders = [province_fixture("01-food-complaint-kaili", infoid)]
    orders += [{**follow_up_fixtures()[name], "infoid": infoid} for name in PROVINCE_FOLLOW_UPS]
    token = UsernameToken("gz-12345", ENVIRONMENT["PARTNER_PROVINCE12345_INBOUND_PASSWORD"], use_digest=True)

    async def submit() -> list[Any]:
        call = await zeep_client(f"{world.gateway_url}/soap/{PROVINCE}?wsdl", token)
        try:
            return [await call.proxy.SubmitTicket(order=order) for order in orders]
        finally:
            await call.aclose()

    answers = asyncio.run(submit())
    assert [(a.status, a.followUp) for a in answers] == [
        ("created", None), ("updated", "new_version"), ("updated", "supplement"), ("updated", "urge"),
        ("updated", "withdrawal")]
    assert len({a.ticketId for a in answers}) == 1
    return str(answers[0].ticketId)


def published_for_polling(world: World) -> tuple[str, str]:
    """A province work order and a legacy registration, each with its follow-ups, held for the gateway's pollers."""
    infoid = "GZ12345-E2E-POLL-0001"
    world.province.province.add_order(province_fixture("01-food-complaint-kaili", infoid))
    for name in PROVINCE_FOLLOW_UPS:
        world.province.province.add_order({**follow_up_fixtures()[name], "infoid": infoid})
    record = with_fresh_number(world.legacy.fixtures["01-12365-quality-complaint"], ("djbh",))
    djbh = str(record["djbh"])
    world.legacy.add(record)
    for name in LEGACY_FOLLOW_UPS:
        world.legacy.add({**world.legacy.follow_ups[name], "djbh": djbh})
    return infoid, djbh


def ticket_of(world: World, adapter_id: str, number: str) -> str:
    def found() -> str | None:
        hits = [t for t in world.tickets(adapter_id=adapter_id) if t["source_ticket_no"] == number]
        return str(hits[0]["ticket_id"]) if len(hits) == 1 else None
    return wait_for(f"the {adapter_id} ticket {number}", found, 60)


def settled(world: World, ticket_id: str) -> dict[str, Any] | None:
    """The ticket once every national delivery is delivered, every follow-up answered and the withdrawal taken."""
    detail = world.ticket(ticket_id)
    national = [d["delivery"] for d in detail["deliveries"] if d["delivery"]["destination"] == "national"]
    if any(d["state"] == "dead" for d in national):
        pytest.fail(f"a national delivery of {ticket_id} went dead\n{unsettled(world, ticket_id)}")
    ticket: dict[str, Any] = detail["ticket"]
    updates = ticket["sender_updates"]
    done = (all(d["state"] == "delivered" for d in national)
            and all(v["national_answered_at"] for v in updates["versions"][1:])
            and all(u["national_answered_at"] for u in updates["urges"])
            and updates["withdrawal"] is not None and updates["withdrawal"]["state"] == "accepted"
            and ticket["lifecycle"]["status"] == "WITHDRAWN")
    return detail if done else None


def unsettled(world: World, ticket_id: str) -> str:
    """What a ticket still waits for, and every dead delivery of the gateway (id, lane, kind, last error), for the
    failure message."""
    detail = world.ticket(ticket_id)
    ticket = detail["ticket"]
    updates = ticket["sender_updates"]
    number = ticket["national_registration_no"]
    lines = [f"lifecycle {ticket['lifecycle']['status']}, national number {number}",
             "versions answered: " + str([(v["version"], v["national_answered_at"]) for v in updates["versions"]]),
             "urges answered: " + str([u["national_answered_at"] for u in updates["urges"]]),
             f"withdrawal: {updates['withdrawal']}"]
    lines += [f"delivery {d['delivery_id']} {d['destination']} {d['kind']} {d['state']} attempts {d['attempts']}"
              f" last error {d['last_error_class']} {d['last_status_code']}"
              for d in (entry["delivery"] for entry in detail["deliveries"])]
    lines += [f"dead delivery {d['delivery_id']} of {d['ticket_id']}: {d['destination']} {d['kind']}, last error"
              f" {d['last_error_class']} {d['last_status_code']}" for d in world.deliveries(state="dead")]
    if number:
        lines += [f"platform event {e['event']['sequence']} {e['event']['status']} {e['state']}: {e['attempts']}"
                  for e in world.national_events(number) if e["state"] != "delivered"]
    return "\n".join(lines)


def test_follow_ups_from_push_soap_and_polling_update_one_registration_under_faults(tmp_path: Path) -> None:
    with running_world(tmp_path, faults=FAULTS, seed=SEED) as world:
        city_ticket, city_number = city_sends(world)
        pushed_ticket = province_pushes(world)
        polled_infoid, polled_djbh = published_for_polling(world)
        polled_ticket = ticket_of(world, PROVINCE, polled_infoid)
        legacy_ticket = ticket_of(world, "legacy-registration", polled_djbh)
        tickets = [city_ticket, pushed_ticket, polled_ticket, legacy_ticket]

        details = {t: wait_for(f"ticket {t} updated, urged and withdrawn at the platform",
                               lambda t=t: settled(world, t), 180, 0.5, explain=lambda t=t: unsettled(world, t))
                   for t in tickets}
        world.national("DELETE", "/sim/faults")  # the checks below read the national API
        stats = world.national_stats()
        registered = world.national_tickets()

        # -- the faults happened, and the follow-ups went through them ---------------------------------------
        assert sum(stats["faults"].values()) > 0, stats
        # -- one registration per ticket: updates are of the same registration, never a second one --------------
        assert sorted(r["ticket_id"] for r in registered) == sorted(tickets)
        for r in registered:
            assert (r["version"], r["versions"], r["urge_count"], r["status"]) == ("3", ["2", "3"], 1, "WITHDRAWN"), r
        # each follow-up counted once by the platform, whatever the retries (lost answers come back as repeats)
        assert (stats["updates"], stats["urges"], stats["withdrawals"]) == (8, 4, 4), stats

        for ticket_id, detail in details.items():
            ticket = detail["ticket"]
            updates = ticket["sender_updates"]
            assert [(v["version"], v["kind"]) for v in updates["versions"]] == [
                ("1", "original"), ("2", "new_version"), ("3", "supplement")], ticket_id
            assert updates["urge_count"] == 1 and len(updates["urges"]) == 1
            assert "【补充材料" in ticket["registration"]["content"]
            number = ticket["national_registration_no"]
            platform_ticket = next(r for r in registered if r["ticket_id"] == ticket_id)
            assert platform_ticket["national_registration_no"] == number
            kinds = [d["delivery"]["kind"] for d in detail["deliveries"] if d["delivery"]["destination"] == "national"]
            assert sorted(kinds) == ["forward", "update", "update", "urge", "withdraw"], kinds
            assert [e["kind"] for e in detail["timeline"]].count("urge") == 1

        # -- the platform's copy is the latest version ----------------------------------------------------------
        token = os.environ["HIG_NATIONAL_TOKEN"]
        city_number_at_platform = details[city_ticket]["ticket"]["national_registration_no"]
        platform_copy = world.national("GET", f"/api/v1/tickets/{city_number_at_platform}",
                                       headers={"Authorization": f"Bearer {token}"})
        assert platform_copy["ticket"]["source"]["source_version"] == "3"
        assert platform_copy["ticket"]["registration"]["request"] == "退款并给予十倍赔偿，要求超市下架同批次过期商品"

        # -- the raw payload of every version is kept (operator, through the ops API) ---------------------------
        def raw(ticket_id: str, version: str | None) -> httpx.Response:
            return world.client.get(f"{world.gateway_url}/api/v1/tickets/{ticket_id}/raw",
                                    params={"version": version} if version else {},
                                    headers={"Authorization": f"Bearer {OPERATOR}"})
        assert raw(city_ticket, None).json()["hotlineNo"] == city_number
        assert raw(city_ticket, "2").json()["version"] == 2
        assert raw(city_ticket, "3").json()["msgNo"] == "BC-2024-0316-0012"
        assert raw(city_ticket, "7").status_code == 404
        assert b":optid>BC20240316001</" in raw(pushed_ticket, "3").content

        # -- the city hears the withdrawal in its own codes -----------------------------------------------------
        def heard() -> bool:
            return any(c.body.get("hotlineNo") == city_number and c.body.get("handleResult") == "1"
                       for c in world.city.callbacks.received() if isinstance(c.body, dict))
        wait_for("the city's withdrawal callback", heard, 60)


def test_follow_ups_wait_behind_a_registration_the_platform_keeps_refusing(tmp_path: Path) -> None:
    """The platform answers every call 503 while a partner sends a ticket, a new version, an urge and a withdrawal:
    no follow-up is sent before the registration is delivered (the platform would answer 404 not_registered, a
    permanent refusal, and the follow-up would be dead); once the platform is back, all arrive, in order."""
    with running_world(tmp_path) as world:
        world.national("POST", "/sim/faults", json={"error_ratio": 1.0, "error_status": 503})
        first = with_fresh_number(world.city.tickets["01-food-complaint"], ("hotlineNo",))
        ticket_id = str(world.city.push(first).body["ticket_id"])
        for name in ("09-food-complaint-version-2", "11-food-complaint-urge", "12-food-complaint-withdrawal"):
            assert world.city.push({**world.city.tickets[name], "hotlineNo": first["hotlineNo"]}).status == 200

        def national_deliveries() -> dict[str, list[dict[str, Any]]]:
            found = [d for d in world.ticket(ticket_id)["deliveries"] if d["delivery"]["destination"] == "national"]
            return {d["delivery"]["kind"]: d["attempts"] for d in found}

        def refused_three_times() -> dict[str, list[dict[str, Any]]] | None:
            national = national_deliveries()
            return national if len(national) == 4 and len(national["forward"]) >= 3 else None
        refusing = wait_for("the registration refused three times", refused_three_times, 120)
        assert {kind: len(attempts) for kind, attempts in refusing.items() if kind != "forward"} == {
            "update": 0, "urge": 0, "withdraw": 0}
        world.national("DELETE", "/sim/faults")

        wait_for(f"ticket {ticket_id} updated, urged and withdrawn at the platform", lambda: settled(world, ticket_id),
                 120, 0.5, explain=lambda: unsettled(world, ticket_id))
        follow_ups = {kind: attempts for kind, attempts in national_deliveries().items() if kind != "forward"}
        assert all(a["status_code"] == 200 for attempts in follow_ups.values() for a in attempts), follow_ups
        stats = world.national_stats()
        assert (stats["updates"], stats["urges"], stats["withdrawals"]) == (1, 1, 1), stats


def test_a_withdrawal_the_platform_refuses_leaves_the_lifecycle_and_shows_the_reason(tmp_path: Path) -> None:
    with running_world(tmp_path) as world:
        first = with_fresh_number(world.city.tickets["01-food-complaint"], ("hotlineNo",))
        created = world.city.push(first)
        ticket_id = str(created.body["ticket_id"])
        number = wait_for("the registration number", lambda: world.ticket(ticket_id)["ticket"][
            "national_registration_no"], 60)
        for status in ("ACCEPTED", "MEDIATING", "MEDIATED"):
            event = world.issue_event(number, status=status)
            world.wait_event_settled(event["event"]["event_id"])
        withdrawal = world.city.push({**world.city.tickets["12-food-complaint-withdrawal"],
                                      "hotlineNo": first["hotlineNo"]})
        assert withdrawal.body["follow_up"] == "withdrawal"

        def answered() -> dict[str, Any] | None:
            w = world.ticket(ticket_id)["ticket"]["sender_updates"]["withdrawal"]
            return w if w["state"] != "requested" else None
        w = wait_for("the platform's answer to the withdrawal", answered, 60)
        assert w["state"] == "refused"
        assert "MEDIATED" in w["national_reason"]
        assert world.ticket(ticket_id)["ticket"]["lifecycle"]["status"] == "MEDIATED"
        assert world.national_stats()["withdrawals_refused"] == 1
